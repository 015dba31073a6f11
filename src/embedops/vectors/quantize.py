"""Quantization of embedding matrices: float16, int8 (calibrated per dimension), binary (sign bits).

Pure functions plus an enum. ``quantize`` turns float32 rows into a ``QuantizedVectors``;
``dequantize`` gives float32 back; ``similarity`` scores float32 queries against quantized rows
the way each method is meant to be searched (inner product for float16/int8, Hamming for binary).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from embedops.errors import DimensionMismatch, FormatError, InvalidInput
from embedops.types import FloatArray

INT8_FILE = "int8-calibration.safetensors"
_CHUNK_BYTES = 1 << 24  # bound the XOR temporary of binary scoring to ~16 MB


class Quantization(StrEnum):
    """How each vector component is stored."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"
    INT8 = "int8"
    BINARY = "binary"

    @classmethod
    def parse(cls, value: str) -> Quantization:
        """The enum member named ``value``; an InvalidInput naming the choices otherwise."""
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise InvalidInput(f"unknown quantization '{value}'", f"use one of {choices}") from None


def bytes_per_vector(method: Quantization, dim: int) -> int:
    """Storage of one ``dim``-dimensional vector under ``method`` (codes only)."""
    if method is Quantization.FLOAT32:
        return 4 * dim
    if method is Quantization.FLOAT16:
        return 2 * dim
    if method is Quantization.INT8:
        return dim
    return (dim + 7) // 8


@dataclass(frozen=True, eq=False)
class Int8Calibration:
    """Per-dimension ranges ``[lo, hi]`` mapped onto the 256 int8 codes."""

    lo: FloatArray
    hi: FloatArray

    @property
    def dim(self) -> int:
        return int(self.lo.shape[0])

    @property
    def scale(self) -> np.ndarray:
        """Step per code, float64; a zero, underflowing or overflowing span gets step 1."""
        step = (self.hi.astype(np.float64) - self.lo.astype(np.float64)) / 255.0
        step[~np.isfinite(step) | (step <= 0)] = 1.0
        return step

    @classmethod
    def fit(cls, x: FloatArray, clip_percentile: float = 0.0) -> Int8Calibration:
        """Ranges from sample rows ``x``; ``clip_percentile`` (0-5) trims outliers at each end."""
        x = check_matrix(x)
        if len(x) == 0:
            raise InvalidInput("cannot calibrate int8 ranges on zero vectors", "pass sample rows")
        if not 0.0 <= clip_percentile <= 5.0:
            raise InvalidInput(f"clip_percentile must be in [0, 5], got {clip_percentile}")
        lo = np.percentile(x, clip_percentile, axis=0).astype(np.float32)
        hi = np.percentile(x, 100.0 - clip_percentile, axis=0).astype(np.float32)
        return cls(lo=lo, hi=hi)

    def save(self, folder: Path) -> Path:
        """Write the ranges as safetensors into ``folder`` (the caller publishes it atomically)."""
        from safetensors.numpy import save_file

        path = folder / INT8_FILE
        save_file({"lo": self.lo, "hi": self.hi}, str(path))
        return path

    @classmethod
    def load(cls, folder: Path) -> Int8Calibration:
        """Read ranges written by ``save``."""
        from safetensors.numpy import load_file

        try:
            tensors = load_file(str(folder / INT8_FILE))
        except (OSError, ValueError) as exc:
            raise FormatError(f"cannot read int8 calibration in {folder}: {exc}") from exc
        return cls(lo=tensors["lo"], hi=tensors["hi"])


@dataclass(frozen=True, eq=False)
class QuantizedVectors:
    """Quantized rows: ``codes`` (float16, int8 or packed uint8 bits), the original ``dim``."""

    method: Quantization
    codes: np.ndarray
    dim: int
    calibration: Int8Calibration | None = None

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes used by the codes (calibration excluded: it is per table, not per vector)."""
        return int(self.codes.nbytes)


def check_matrix(x: FloatArray, dim: int | None = None) -> FloatArray:
    """``x`` as a C-contiguous float32 2-D array with finite values (and ``dim`` columns)."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise InvalidInput(f"expected a 2-D array of vectors, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise InvalidInput(f"expected numeric vectors, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise InvalidInput("vectors contain NaN or infinite values", "check the encoder output")
    if dim is not None and arr.shape[1] != dim:
        raise DimensionMismatch(f"vectors have dim {arr.shape[1]}, expected {dim}")
    return arr


def quantize(
    x: FloatArray, method: Quantization, calibration: Int8Calibration | None = None
) -> QuantizedVectors:
    """Quantize float rows; int8 uses ``calibration`` (fitted on ``x`` itself when None)."""
    x = check_matrix(x)
    dim = x.shape[1]
    if method is Quantization.FLOAT32:
        return QuantizedVectors(method, x.copy(), dim)
    if method is Quantization.FLOAT16:
        return QuantizedVectors(method, x.astype(np.float16), dim)
    if method is Quantization.BINARY:
        return QuantizedVectors(method, np.packbits(x > 0, axis=1), dim)
    cal = calibration if calibration is not None else Int8Calibration.fit(x)
    if cal.dim != dim:
        raise DimensionMismatch(f"int8 calibration has dim {cal.dim}, vectors have dim {dim}")
    steps = np.nan_to_num(np.rint((x - cal.lo.astype(np.float64)) / cal.scale), nan=128.0)
    codes = (np.clip(steps, 0, 255) - 128).astype(np.int8)
    return QuantizedVectors(method, codes, dim, cal)


def dequantize(q: QuantizedVectors) -> FloatArray:
    """Float32 approximation of the original rows (binary gives ±1 per component)."""
    if q.method in (Quantization.FLOAT32, Quantization.FLOAT16):
        return q.codes.astype(np.float32)
    if q.method is Quantization.BINARY:
        bits = np.unpackbits(q.codes, axis=1, count=q.dim)
        return bits.astype(np.float32) * 2.0 - 1.0
    assert q.calibration is not None
    steps = q.codes.astype(np.float32) + 128.0
    return (q.calibration.lo + steps * q.calibration.scale).astype(np.float32)


def similarity(queries: FloatArray, docs: QuantizedVectors) -> FloatArray:
    """Scores ``(n_queries, n_docs)``: inner product for float/int8 (queries kept in float32),
    and for binary the sign agreement ``1 - 2 * hamming / dim`` (queries binarized too).
    """
    queries = check_matrix(queries, docs.dim)
    if docs.method is not Quantization.BINARY:
        return (queries @ dequantize(docs).T).astype(np.float32)
    packed = np.packbits(queries > 0, axis=1)
    out = np.empty((len(packed), len(docs)), dtype=np.float32)
    rows = max(1, _CHUNK_BYTES // max(1, docs.codes.size))
    for start in range(0, len(packed), rows):
        block = packed[start : start + rows]
        diff = np.bitwise_xor(block[:, None, :], docs.codes[None, :, :])
        hamming = np.bitwise_count(diff).sum(axis=2, dtype=np.int64)
        out[start : start + len(block)] = 1.0 - 2.0 * hamming / docs.dim
    return out
