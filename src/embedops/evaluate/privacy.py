"""Privacy audit of a static (word-vector) model: canary exposure and a PII scan of the vocabulary.

Canaries. A canary is a secret token planted in a training corpus after a fixed context
(``plant_canaries``: "my vault code is zqvbkm", N times at random lines). After training, its
*exposure* is the rank of the secret among ``candidates`` vocabulary words of the same
frequency by how unusually close each is to the canary's context, and exposure = log2(candidates
+ 1) - log2(rank) bits (Carlini et al., "The Secret Sharer", with the rank over random
candidates). A secret the model never saw has no vector: its rank is the worst and its
exposure 0. A canary is *flagged* when its exposure reaches ``threshold_bits``.

The score (``context_scores``), built so that it works on CBOW as well as skip-gram vectors:

1. Candidates are the words nearest to the secret in log corpus frequency (in frequency rank
   when the table has no counts), ties broken at random: a word seen 10 times is compared
   with words seen about 10 times, never with frequent words, whose vectors differ in norm and
   direction for reasons that have nothing to do with the canary.
2. The candidates' mean vector is subtracted from the secret's and each candidate's vector,
   and the table's mean from each context word's. Rare words share one direction (in CBOW
   models most of all: a rare word's cosine with any frequent word is then about the same,
   which made the plain neighbour similarity rank the secret among random rare words);
   removing the frequency band's own mean leaves what is particular to each word.
3. For each context word, the cosines of the centred vectors are standardised over the
   candidates (z-scores), so every context word is on one scale however spread its cosines.
4. A word's score is the mean of its highest half of those z-scores: function words of the
   context ("my", "is") are near every word and carry no signal, and which half informs
   depends on the model, so the best half counts.

Measured (docs/benchmarks/privacy.md; ``bench/privacy.py --audit``, two runs of two seeds),
models trained by ``train_static`` with ``embedops train``'s CBOW defaults and with ``--sg``
on 40,000 WordNet glosses and on 1M words of corpus-en-13m: a secret planted 10 times ranked
1-55 among 1,000 candidates (flagged at 3 bits in 16 of 16; the plain neighbour similarity
this replaced: 1-217, 13 of 16), planted 50 times 1, planted 0 or 1 times it is not in the
vocabulary (``min_count`` 5). A word inserted 10 times at random places ranked 334-937 (8
models), and 16 real words never written after the context were flagged 0 times in 16 models.
But a secret
planted 10 times in a line of the same shape after *other* words ("the weather report said
vexulant") ranked 5-704 and was flagged in 5 of 16: a flag says the secret is tied to this
context or to contexts like it, not to these exact words. A skip-gram model that has barely
learnt a canary (its own likelihood of the context given the secret ranks it ~90-270 of
1,000) is not flagged, nor is a small undertrained CBOW model (gensim's learning rate
0.025 on 60k words: its own likelihood ranks the secret ~165 of 500): the audit sees what the
vectors learnt, no more.
A secret seen fewer than ``min_count`` times is not in the vocabulary and cannot be ranked:
the audit then says so, and is not evidence that the text was not memorised elsewhere (a
fine-tuned encoder, a subword model).

PII scan. Every vocabulary entry (phrases joined by ``_`` read as spaces) goes through the
redaction patterns of ``text.redact`` (e-mail, phone, card, IP, URL credentials); a hit is a
finding. With the default tokenizer, e-mails and digits are split or dropped before training,
so a hit means a model trained with ``--no-redact`` and a tokenizer that keeps such tokens.

Membership inference. Given sentences that were in the training corpus (members) and
sentences from the same source that were not (held out), each sentence gets a score: the mean
cosine between the vectors of its in-vocabulary words that lie within ``window`` positions of
each other (word2vec pulls the words of a trained window together, and overfitting pulls those
of seen sentences most). The estimate is the ROC AUC of that score separating members from held
out sentences (Mann-Whitney, ties count half): 0.5 is chance, the baseline of a model that
memorised nothing; it is flagged above ``max_auc``. A low AUC bounds this attack only, not every
attack.

The report is text, JSON-able or HTML; ``PrivacyReport.passed`` is the gate a publishing step
can check (no flagged canary, no PII finding, no flagged membership estimate). Findings name the
vocabulary entries found, so the report is as sensitive as the model: keep it with the model,
not in logs.

Not here (yet): fine-tuned transformer encoders (likelihood exposure needs the model's output
layer).
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
DEFAULT_MAX_AUC = 0.6
DEFAULT_WINDOW = 5
MAX_SENTENCES = 5000  # of each side: a seeded sample beyond that


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


@dataclass(frozen=True)
class MembershipEstimate:
    """How well neighbour similarity tells training sentences from held-out ones."""

    auc: float
    members: int
    held_out: int
    max_auc: float
    flagged: bool
    baseline: float = 0.5


@dataclass
class PrivacyReport:
    """The audit of one model: canary exposures, PII findings, and the gate's verdict."""

    model: str
    vocabulary: int
    threshold_bits: float
    exposures: list[Exposure] = field(default_factory=list)
    pii: list[PiiFinding] = field(default_factory=list)
    membership: MembershipEstimate | None = None

    @property
    def passed(self) -> bool:
        """The gate: no flagged canary, no PII in the vocabulary, no flagged membership AUC."""
        leaky = self.membership is not None and self.membership.flagged
        return not self.pii and not leaky and not any(e.flagged for e in self.exposures)

    def check(self) -> None:
        """The gate as an error: PrivacyGateFailed (counts only, no entries) unless passed."""
        if self.passed:
            return
        flagged = sum(e.flagged for e in self.exposures)
        m = self.membership
        auc = f", membership AUC {m.auc:.2f} > {m.max_auc:g}" if m and m.flagged else ""
        raise PrivacyGateFailed(
            f"privacy audit of {self.model} failed: {flagged} canaries flagged, "
            f"{len(self.pii)} vocabulary entries with PII{auc}",
            "retrain with redaction on (no --no-redact), fewer epochs or --dp-epsilon; "
            "see the report",
        )

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "vocabulary": self.vocabulary,
                "threshold_bits": self.threshold_bits, "passed": self.passed,
                "exposures": [asdict(e) for e in self.exposures],
                "pii": [{"entry": f.entry, "kinds": list(f.kinds)} for f in self.pii],
                "membership": asdict(self.membership) if self.membership else None}

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
        if self.membership is not None:
            lines.append(f"  {_membership_line(self.membership)}")
        return "\n".join(lines)

    def to_html(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(e.canary)}</td><td>{e.rank}</td><td>{e.exposure_bits:.2f}"
            f"</td><td>{'FLAGGED' if e.flagged else 'ok'}</td></tr>" for e in self.exposures)
        pii = "".join(f"<li>{html.escape(f.entry)} ({html.escape(', '.join(f.kinds))})</li>"
                      for f in self.pii)
        verdict = "passed" if self.passed else "FAILED"
        membership = (f"<h2>Membership inference</h2><p>{_membership_line(self.membership)}</p>"
                      if self.membership is not None else "")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>Privacy audit "
                f"{html.escape(self.model)}</title></head><body><h1>Privacy audit of "
                f"{html.escape(self.model)}: {verdict}</h1><h2>Canaries</h2><table><tr><th>"
                f"canary</th><th>rank</th><th>exposure (bits)</th><th>verdict</th></tr>{rows}"
                f"</table><h2>PII in the vocabulary ({len(self.pii)})</h2><ul>{pii}</ul>"
                f"{membership}</body></html>")


def _membership_line(m: MembershipEstimate) -> str:
    mark = "FLAGGED" if m.flagged else "ok"
    return (f"membership inference: AUC {m.auc:.3f} (baseline {m.baseline}, flagged above "
            f"{m.max_auc:g}) on {m.members} training vs {m.held_out} held-out sentences, {mark}")


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


def frequency_neighbours(vectors: Any, word: int, exclude: Iterable[int], n: int,
                         seed: int = 0) -> np.ndarray:
    """The ``n`` rows nearest to row ``word`` in log corpus frequency (``vectors.counts``; in
    frequency rank when it has none), ``word`` and ``exclude`` left out, ties broken by a
    seeded random order."""
    size = len(vectors.index_to_key)
    counts = getattr(vectors, "counts", None)
    if counts is not None and len(counts) == size and np.all(np.asarray(counts) > 0):
        key = np.log(np.asarray(counts, dtype=np.float64))
    else:  # tables list their words most frequent first
        key = np.log1p(np.arange(size, dtype=np.float64))
    distance = np.abs(key - key[word])
    distance[[word, *exclude]] = np.inf
    jitter = np.random.default_rng(seed).random(size)
    order = np.lexsort((jitter, distance))
    return order[:min(n, int(np.isfinite(distance).sum()))]


def context_scores(table: np.ndarray, words: np.ndarray, band: np.ndarray,
                   context: Sequence[int]) -> np.ndarray:
    """How unusually close each row of ``words`` is to the ``context`` rows, against the
    frequency ``band`` (the candidates): the rows centred on the band's mean, the context on
    the table's, cosines standardised per context word over the band, and the mean of each
    word's highest half of those z-scores (see the module doc)."""
    center = table[band].mean(axis=0)
    ctx = _unit(table[list(context)] - table.mean(axis=0))
    band_cos = _unit(table[band] - center) @ ctx.T
    mean, spread = band_cos.mean(axis=0), band_cos.std(axis=0) + 1e-9
    z = (_unit(table[words] - center) @ ctx.T - mean) / spread
    half = (len(context) + 1) // 2
    return np.asarray(np.sort(z, axis=1)[:, -half:].mean(axis=1), dtype=np.float64)


def canary_exposure(vectors: Any, canary: Canary, candidates: int = DEFAULT_CANDIDATES,
                    threshold_bits: float = DEFAULT_THRESHOLD_BITS, seed: int = 0) -> Exposure:
    """The exposure of ``canary`` in ``vectors`` (a ``StaticVectors``), see the module doc."""
    index = vectors.key_to_index
    context = sorted({index[w] for w in canary.context if w in index})
    secret = index.get(canary.secret)
    others = len(vectors.index_to_key) - len(context) - (secret is not None)
    n = min(candidates, others)
    if n < 2 or not context or secret is None:
        return Exposure(canary.sentence, secret is not None, n + 1, n, 0.0, False)
    band = frequency_neighbours(vectors, secret, context, n, seed)
    table = np.asarray(vectors.vectors, dtype=np.float32)
    scores = context_scores(table, np.asarray([secret, *band]), band, context)
    rank = 1 + int(np.sum(scores[1:] >= scores[0]))
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


def sentence_scores(vectors: Any, sentences: Iterable[Sequence[str]],
                    window: int = DEFAULT_WINDOW) -> np.ndarray:
    """The membership score of each sentence that has two in-vocabulary words: the mean cosine
    of its in-vocabulary words within ``window`` positions of each other (see the module doc)."""
    index = vectors.key_to_index
    table = np.asarray(vectors.vectors, dtype=np.float32)
    scores = []
    for sentence in sentences:
        ids = [index[w] for w in sentence if w in index]
        if len(ids) < 2:
            continue
        unit = _unit(table[ids])
        gap = np.abs(np.subtract.outer(np.arange(len(ids)), np.arange(len(ids))))
        near = (gap >= 1) & (gap <= window)
        scores.append(float((unit @ unit.T)[near].mean()))
    return np.asarray(scores, dtype=np.float64)


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half (Mann-Whitney U / n m)."""
    ordered = np.sort(negative)
    below = np.searchsorted(ordered, positive, side="left")
    tied = np.searchsorted(ordered, positive, side="right") - below
    return float((below + 0.5 * tied).sum() / (len(positive) * len(negative)))


def membership_inference(vectors: Any, members: Sequence[Sequence[str]],
                         held_out: Sequence[Sequence[str]], *,
                         max_auc: float = DEFAULT_MAX_AUC, window: int = DEFAULT_WINDOW,
                         seed: int = 0) -> MembershipEstimate:
    """The AUC of ``sentence_scores`` telling ``members`` (trained on) from ``held_out``
    sentences (token lists; at most ``MAX_SENTENCES`` of each, a seeded sample)."""
    if not 0.5 <= max_auc <= 1:
        raise InvalidInput(f"the largest membership AUC allowed must be in [0.5, 1], got "
                           f"{max_auc}", "e.g. 0.6 (0.5 is chance)")
    if window < 1:
        raise InvalidInput(f"the membership window must be >= 1, got {window}")
    rng = random.Random(seed)
    sides = []
    for name, sentences in (("training", members), ("held-out", held_out)):
        picked = rng.sample(list(sentences), min(len(sentences), MAX_SENTENCES))
        scores = sentence_scores(vectors, picked, window)
        if scores.size == 0:
            raise InvalidInput(f"no {name} sentence has two words in the model's vocabulary",
                               f"give more {name} sentences, from the training corpus' source")
        sides.append(scores)
    auc = roc_auc(sides[0], sides[1])
    return MembershipEstimate(auc, len(sides[0]), len(sides[1]), max_auc, auc > max_auc)


def audit_static(vectors: Any, canaries: Sequence[Canary] = (), *,
                 candidates: int = DEFAULT_CANDIDATES,
                 threshold_bits: float = DEFAULT_THRESHOLD_BITS, seed: int = 0,
                 model: str | None = None,
                 members: Sequence[Sequence[str]] = (),
                 held_out: Sequence[Sequence[str]] = (),
                 max_membership_auc: float = DEFAULT_MAX_AUC) -> PrivacyReport:
    """Audit a ``StaticVectors``: the exposure of each canary, a PII scan of its words and,
    given training (``members``) and ``held_out`` sentences, a membership-inference AUC."""
    if bool(members) != bool(held_out):
        raise InvalidInput("membership inference needs both training and held-out sentences",
                           "give both (--members and --held-out) or neither")
    report = PrivacyReport(model or str(getattr(vectors, "name", "model")),
                           len(vectors.index_to_key), threshold_bits)
    report.exposures = [canary_exposure(vectors, c, candidates, threshold_bits, seed)
                        for c in canaries]
    report.pii = scan_vocabulary(vectors.index_to_key)
    if members:
        report.membership = membership_inference(vectors, members, held_out,
                                                 max_auc=max_membership_auc, seed=seed)
    return report
