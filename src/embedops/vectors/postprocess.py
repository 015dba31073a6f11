"""Post-processing of embeddings: L2 normalization, PCA, Matryoshka truncation, and the
``Postprocess`` config that chains them (truncate → PCA → normalize → quantize).

A fitted PCA records the model version it was fitted for; applying it to vectors of another model
is refused, so queries and documents are always transformed alike. It is saved next to the model
version (``<home>/postprocess/<name>/<version>/pca-<k>/``) as safetensors plus JSON.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import DimensionMismatch, FormatError, InvalidInput, NotFound, VersionMismatch
from embedops.fsio import atomic_write_json, fsync_dir, fsync_tree, sha256_file, staged_dir
from embedops.models.registry import ModelVersion, Registry, parse_ref
from embedops.types import FloatArray
from embedops.vectors.quantize import Quantization, check_matrix

PCA_TENSORS = "pca.safetensors"
PCA_META = "pca.json"


def l2_normalize(x: FloatArray) -> FloatArray:
    """Rows scaled to unit length (zero rows stay zero), as a new float32 array."""
    x = check_matrix(x)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (x / norms).astype(np.float32)


def supports_matryoshka(mv: ModelVersion) -> bool:
    """Whether the manifest says the model was trained so that prefixes are embeddings too."""
    return bool(mv.manifest.get("matryoshka") or mv.params.get("matryoshka"))


def truncate(
    x: FloatArray, dim: int, *, matryoshka: bool, model_ref: str = "the model"
) -> FloatArray:
    """Keep the first ``dim`` components and renormalize (Matryoshka-trained models only)."""
    x = check_matrix(x)
    if not matryoshka:
        raise InvalidInput(
            f"{model_ref} is not Matryoshka-trained, so truncating its vectors loses quality",
            "use pca:<k> instead, or a model whose manifest sets matryoshka: true",
        )
    if not 1 <= dim <= x.shape[1]:
        raise InvalidInput(f"cannot truncate {x.shape[1]}-dimensional vectors to {dim}")
    return l2_normalize(x[:, :dim])


@dataclass(frozen=True, eq=False)
class PCAState:
    """A fitted PCA: ``components`` (k, d) rows, the ``mean`` removed first, and the ``model_ref``
    of the vectors it was fitted on.
    """

    model_ref: str
    mean: FloatArray
    components: FloatArray
    explained_variance: FloatArray

    @property
    def dim_in(self) -> int:
        return int(self.components.shape[1])

    @property
    def dim_out(self) -> int:
        return int(self.components.shape[0])

    def apply(self, x: FloatArray, model_ref: str) -> FloatArray:
        """Project rows of ``x`` (made by ``model_ref``) onto the components."""
        if model_ref != self.model_ref:
            raise VersionMismatch(
                f"PCA was fitted for {self.model_ref}, the vectors come from {model_ref}",
                f"fit a PCA for {model_ref} (e.g. 'pca:{self.dim_out}' in its post-processing)",
            )
        x = check_matrix(x)
        if x.shape[1] != self.dim_in:
            raise DimensionMismatch(
                f"PCA for {self.model_ref} expects dim {self.dim_in}, vectors have {x.shape[1]}"
            )
        return ((x - self.mean) @ self.components.T).astype(np.float32)

    def save(self, folder: Path) -> None:
        """Write ``pca.safetensors`` and ``pca.json`` (model ref, dims, sha256) into ``folder``."""
        from safetensors.numpy import save_file

        folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            "mean": self.mean,
            "components": self.components,
            "explained_variance": self.explained_variance,
        }
        save_file(
            {k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(folder / PCA_TENSORS)
        )
        meta = {
            "model_ref": self.model_ref,
            "dim_in": self.dim_in,
            "dim_out": self.dim_out,
            "sha256": sha256_file(folder / PCA_TENSORS),
        }
        atomic_write_json(folder / PCA_META, meta)

    @classmethod
    def load(cls, folder: Path) -> PCAState:
        """Read a PCA written by ``save``, checking its checksum."""
        from safetensors.numpy import load_file

        try:
            meta = json.loads((folder / PCA_META).read_text())
            if sha256_file(folder / PCA_TENSORS) != meta["sha256"]:
                raise FormatError(f"PCA in {folder} fails its checksum", "fit it again")
            tensors = load_file(str(folder / PCA_TENSORS))
        except (OSError, ValueError, KeyError) as exc:
            raise FormatError(f"cannot read the PCA in {folder}: {exc}", "fit it again") from exc
        return cls(
            meta["model_ref"], tensors["mean"], tensors["components"], tensors["explained_variance"]
        )


def fit_pca(
    x: FloatArray, k: int, model_ref: str, *, sample: int = 20_000, seed: int = 0
) -> PCAState:
    """Fit a PCA with ``k`` components on at most ``sample`` rows of ``x`` (seeded)."""
    x = check_matrix(x)
    n, d = x.shape
    if not 1 <= k <= min(d, n):
        raise InvalidInput(
            f"PCA to {k} dims needs 1 <= k <= min(dim={d}, rows={n})",
            "pick a smaller k or fit on more vectors",
        )
    if n > sample:
        x = x[np.random.default_rng(seed).choice(n, sample, replace=False)]
    mean = x.mean(axis=0)
    _, sing, vt = np.linalg.svd(x - mean, full_matrices=False)
    # Fix each component's sign so that refits on the same data give identical projections.
    signs = np.sign(vt[np.arange(k), np.argmax(np.abs(vt[:k]), axis=1)])
    signs[signs == 0] = 1.0
    components = (vt[:k] * signs[:, None]).astype(np.float32)
    variance = (sing[:k] ** 2 / max(len(x) - 1, 1)).astype(np.float32)
    return PCAState(model_ref, mean.astype(np.float32), components, variance)


def fitted_dir(registry: Registry, model_ref: str, step: str) -> Path:
    """Where the fitted state of ``step`` (e.g. ``pca-128``) for ``model_ref`` lives."""
    mv = registry.get(model_ref)
    return registry.workspace.postprocess_dir / mv.name / str(mv.version) / step


def save_pca(registry: Registry, state: PCAState) -> Path:
    """Publish ``state`` next to its model version atomically (replacing an older fit)."""
    final = fitted_dir(registry, state.model_ref, f"pca-{state.dim_out}")
    with staged_dir(registry.workspace.staging_dir, f"pca.{os.getpid()}") as tmp:
        state.save(tmp)
        fsync_tree(tmp)
        final.parent.mkdir(parents=True, exist_ok=True)
        old = None
        if final.exists():
            old = final.with_name(f".{final.name}.old.{os.getpid()}")
            os.rename(final, old)
        os.rename(tmp, final)
        fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_pca(registry: Registry, model_ref: str, k: int) -> PCAState:
    """The PCA to ``k`` dims fitted for ``model_ref``; NotFound with a hint when there is none."""
    folder = fitted_dir(registry, model_ref, f"pca-{k}")
    if not (folder / PCA_META).exists():
        raise NotFound(
            f"no PCA to {k} dims has been fitted for {model_ref}",
            "fit one with embedops.vectors.fit_pca and save_pca",
        )
    return PCAState.load(folder)


@dataclass(frozen=True)
class Postprocess:
    """Post-processing config: truncate → PCA → L2-normalize → quantize.

    Round-trips ``Postprocess(**cfg.to_dict())``. ``truncate_dim`` needs a Matryoshka model.
    """

    truncate_dim: int | None = None
    pca_dim: int | None = None
    normalize: bool = True
    quantization: str = Quantization.FLOAT32.value

    def __post_init__(self) -> None:
        for name in ("truncate_dim", "pca_dim"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise InvalidInput(f"{name} must be a positive integer or null, got {value!r}")
        if not isinstance(self.normalize, bool):
            raise InvalidInput(f"normalize must be true or false, got {self.normalize!r}")
        if not isinstance(self.quantization, str):
            raise InvalidInput(f"quantization must be a string, got {self.quantization!r}")
        Quantization.parse(self.quantization)

    @property
    def method(self) -> Quantization:
        return Quantization(self.quantization)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``Postprocess(**d)`` rebuilds an equal config."""
        return asdict(self)

    @classmethod
    def from_steps(cls, steps: list[str]) -> Postprocess:
        """Build from step strings such as ``["truncate:256", "pca:128", "int8"]``."""
        fields: dict[str, Any] = {}
        for step in steps:
            fields.update(parse_step(step))
        return cls(**fields)

    def apply(
        self,
        x: FloatArray,
        model_ref: str,
        *,
        pca: PCAState | None = None,
        matryoshka: bool = False,
    ) -> FloatArray:
        """The float32 part (truncate, PCA, normalize); quantize the result with ``quantize``."""
        parse_ref(model_ref)
        out = check_matrix(x)
        if self.truncate_dim is not None:
            out = truncate(out, self.truncate_dim, matryoshka=matryoshka, model_ref=model_ref)
        if self.pca_dim is not None:
            if pca is None or pca.dim_out != self.pca_dim:
                raise InvalidInput(
                    f"this post-processing needs a PCA to {self.pca_dim} dims for {model_ref}",
                    "pass pca=fit_pca(...) or load_pca(registry, ref, k)",
                )
            out = pca.apply(out, model_ref)
        return l2_normalize(out) if self.normalize else out


def parse_step(step: object) -> dict[str, Any]:
    """One step string as Postprocess fields: ``none``, ``normalize``, ``pca:K``,
    ``truncate:K`` or a quantization name (``float16``, ``int8``, ``binary``, ``float32``).
    """
    if not isinstance(step, str) or not step.strip():
        raise InvalidInput(f"a post-processing step must be a non-empty string, got {step!r}")
    name, _, arg = step.strip().lower().partition(":")
    if name in ("pca", "truncate"):
        if not arg.isdigit() or int(arg) < 1:
            raise InvalidInput(f"step '{step}' needs a positive dimension", f"write {name}:128")
        return {f"{name}_dim": int(arg)}
    if arg:
        raise InvalidInput(f"step '{step}' takes no argument")
    if name == "none":
        return {}
    if name == "normalize":
        return {"normalize": True}
    return {"quantization": Quantization.parse(name).value}
