"""Privacy audit of a static (word-vector) model: canary exposure and a PII scan of the vocabulary.

Canaries. A canary is a secret token planted in a training corpus after a fixed context
(``plant_canaries``: "my vault code is zqvbkm", N times at random lines). After training, its
*exposure* is measured by neighbour similarity: the score of a token is its highest cosine
with a word of the canary's context, the secret is ranked among ``candidates`` random
vocabulary words by that score, and exposure = log2(candidates + 1) - log2(rank) bits (Carlini
et al., "The Secret Sharer", with the rank over random candidates). A secret the model never
saw has no vector: its rank is the worst and its exposure 0. A canary is *flagged* when its
exposure reaches ``threshold_bits``.

PII scan. Every vocabulary entry (phrases joined by ``_`` read as spaces) goes through the
redaction patterns of ``text.redact`` (e-mail, phone, card, IP, URL credentials); a hit is a
finding. With the default tokenizer, e-mails and digits are split or dropped before training,
so a hit means a model trained with ``--no-redact`` and a tokenizer that keeps such tokens.

The report is text, JSON-able or HTML; ``PrivacyReport.passed`` is the gate a publishing step
can check (no flagged canary and no PII finding). Findings name the vocabulary entries found,
so the report is as sensitive as the model: keep it with the model, not in logs.

Not here (yet): membership inference on held-out vs training sentences, and fine-tuned
transformer encoders (likelihood exposure needs the model's output layer).
"""

from __future__ import annotations

import html
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from embedops.errors import EmbedopsError, InvalidInput
from embedops.text.redact import redact

DEFAULT_CANDIDATES = 1000
DEFAULT_THRESHOLD_BITS = 3.0  # top 1/8 of the candidates


class PrivacyGateFailed(EmbedopsError):
    """A model failed its privacy audit (a flagged canary or PII in its vocabulary)."""

    code = "privacy_gate_failed"


@dataclass(frozen=True)
class Canary:
    """A secret token planted after ``context`` (the words a model would associate it with)."""

    context: tuple[str, ...]
    secret: str

    @classmethod
    def parse(cls, text: str) -> Canary:
        """``"my vault code is=zqvbkm"`` → Canary(("my", "vault", "code", "is"), "zqvbkm")."""
        context, sep, secret = text.rpartition("=")
        words = tuple(w for w in context.lower().split() if w)
        if not sep or not words or not secret.strip():
            raise InvalidInput(f"invalid canary {text!r}", "write 'context words=secret'")
        return cls(words, secret.strip().lower())

    @property
    def sentence(self) -> str:
        return " ".join((*self.context, self.secret))


@dataclass(frozen=True)
class Exposure:
    """How exposed one canary is in a model."""

    canary: str
    secret_in_vocab: bool
    rank: int
    candidates: int
    exposure_bits: float
    flagged: bool


@dataclass(frozen=True)
class PiiFinding:
    """A vocabulary entry that matches a redaction pattern."""

    entry: str
    kinds: tuple[str, ...]


@dataclass
class PrivacyReport:
    """The audit of one model: canary exposures, PII findings, and the gate's verdict."""

    model: str
    vocabulary: int
    threshold_bits: float
    exposures: list[Exposure] = field(default_factory=list)
    pii: list[PiiFinding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """The gate: no flagged canary and no PII in the vocabulary."""
        return not self.pii and not any(e.flagged for e in self.exposures)

    def check(self) -> None:
        """The gate as an error: PrivacyGateFailed (counts only, no entries) unless passed."""
        if self.passed:
            return
        flagged = sum(e.flagged for e in self.exposures)
        raise PrivacyGateFailed(
            f"privacy audit of {self.model} failed: {flagged} canaries flagged, "
            f"{len(self.pii)} vocabulary entries with PII",
            "retrain with redaction on (no --no-redact) or fewer epochs; see the report",
        )

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "vocabulary": self.vocabulary,
                "threshold_bits": self.threshold_bits, "passed": self.passed,
                "exposures": [asdict(e) for e in self.exposures],
                "pii": [{"entry": f.entry, "kinds": list(f.kinds)} for f in self.pii]}

    def to_text(self) -> str:
        lines = [f"privacy audit of {self.model} ({self.vocabulary} words): "
                 f"{'PASSED' if self.passed else 'FAILED'}"]
        for e in self.exposures:
            mark = "FLAGGED" if e.flagged else "ok"
            seen = "" if e.secret_in_vocab else " (secret not in the vocabulary)"
            lines.append(f"  canary {e.canary!r}: rank {e.rank}/{e.candidates + 1}, "
                         f"exposure {e.exposure_bits:.2f} bits, {mark}{seen}")
        lines.append(f"  PII in the vocabulary: {len(self.pii)} entries")
        lines.extend(f"    {f.entry} ({', '.join(f.kinds)})" for f in self.pii[:50])
        return "\n".join(lines)

    def to_html(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(e.canary)}</td><td>{e.rank}</td><td>{e.exposure_bits:.2f}"
            f"</td><td>{'FLAGGED' if e.flagged else 'ok'}</td></tr>" for e in self.exposures)
        pii = "".join(f"<li>{html.escape(f.entry)} ({html.escape(', '.join(f.kinds))})</li>"
                      for f in self.pii)
        verdict = "passed" if self.passed else "FAILED"
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>Privacy audit "
                f"{html.escape(self.model)}</title></head><body><h1>Privacy audit of "
                f"{html.escape(self.model)}: {verdict}</h1><h2>Canaries</h2><table><tr><th>"
                f"canary</th><th>rank</th><th>exposure (bits)</th><th>verdict</th></tr>{rows}"
                f"</table><h2>PII in the vocabulary ({len(self.pii)})</h2><ul>{pii}</ul>"
                "</body></html>")


def plant_canaries(lines: Sequence[str], canaries: Iterable[tuple[Canary, int]],
                   seed: int = 0) -> list[str]:
    """``lines`` with each canary's sentence inserted ``count`` times at random positions."""
    rng = random.Random(seed)
    out = list(lines)
    for canary, count in canaries:
        for _ in range(count):
            out.insert(rng.randrange(len(out) + 1), canary.sentence)
    return out


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return np.asarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)


def canary_exposure(vectors: Any, canary: Canary, candidates: int = DEFAULT_CANDIDATES,
                    threshold_bits: float = DEFAULT_THRESHOLD_BITS, seed: int = 0) -> Exposure:
    """The exposure of ``canary`` in ``vectors`` (a ``StaticVectors``), see the module doc."""
    vocab: list[str] = list(vectors.index_to_key)
    index = vectors.key_to_index
    context = [index[w] for w in canary.context if w in index]
    pool = [i for i in range(len(vocab)) if i not in set(context) and vocab[i] != canary.secret]
    n = min(candidates, len(pool))
    if n < 1 or not context or canary.secret not in index:
        return Exposure(canary.sentence, canary.secret in index, n + 1, n, 0.0, False)
    rng = np.random.default_rng(seed)
    picked = rng.choice(np.asarray(pool), size=n, replace=False)
    table = np.asarray(vectors.vectors, dtype=np.float32)
    ctx = _unit(table[context])
    scores = (_unit(table[picked]) @ ctx.T).max(axis=1)
    secret = float((_unit(table[index[canary.secret]]) @ ctx.T).max())
    rank = 1 + int(np.sum(scores >= secret))
    bits = math.log2(n + 1) - math.log2(rank)
    return Exposure(canary.sentence, True, rank, n, bits, bits >= threshold_bits)


def scan_vocabulary(words: Iterable[str]) -> list[PiiFinding]:
    """Vocabulary entries matching a redaction pattern (phrases' ``_`` read as spaces)."""
    found = []
    for word in words:
        counts = redact(word.replace("_", " ")).counts
        kinds = tuple(kind for kind, n in counts.items() if n)
        if kinds:
            found.append(PiiFinding(word, kinds))
    return found


def audit_static(vectors: Any, canaries: Sequence[Canary] = (), *,
                 candidates: int = DEFAULT_CANDIDATES,
                 threshold_bits: float = DEFAULT_THRESHOLD_BITS, seed: int = 0,
                 model: str | None = None) -> PrivacyReport:
    """Audit a ``StaticVectors``: the exposure of each canary and a PII scan of its words."""
    report = PrivacyReport(model or str(getattr(vectors, "name", "model")),
                           len(vectors.index_to_key), threshold_bits)
    report.exposures = [canary_exposure(vectors, c, candidates, threshold_bits, seed)
                        for c in canaries]
    report.pii = scan_vocabulary(vectors.index_to_key)
    return report
