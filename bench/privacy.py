"""The utility cost of differential privacy: the torch word2vec trainer at several epsilons against
the same trainer without DP, side by side in one run.

    python bench/privacy.py [--data ../shared/data] [--stride 4] [--max-words 3000000]
                            [--epsilons 1 4 8] [--split train|dev] [--variant NAME:k=v,...]

Corpus: lines of ``corpus-en-13m.txt.xz`` (one line a sentence: the privacy unit), tokenized as
``[a-z]+`` after lowercasing. ``--stride K`` keeps every K-th line, so a subset spans all of
the corpus' sources instead of its first one (Brown): the ``train`` split is lines ``i % K ==
0``, the ``dev`` split lines ``i % K == K // 2`` (disjoint; tune on ``dev``, report ``train``),
each up to ``--max-words`` words.

Contestants: the non-private trainer (skip-gram, ``--dim``, window 5, 5 negatives, sample 1e-3,
min_count 5, ``--epochs``, Adagrad), then for each epsilon the DP trainer with the DP settings
(``--dp-*``, ``--clip``, ``--lot``; delta 1/N, the noise solved by opacus' RDP accountant), and
with ``--same-config`` the non-private trainer with the DP settings (what the DP settings cost
without noise). ``--variant NAME:key=value,...`` adds DP runs with other ``SGNSConfig`` values
(for tuning; ``lot`` is ``dp_batch_sentences``). Prints, and appends to ``--out`` as JSON lines,
WS353 / SimLex-999 Spearman over the pairs in the model's vocabulary (how many are), also on
the even (dev) and odd (test) halves of each set, Google analogy accuracy (3CosAdd, top 30k),
the epsilon spent, noise, steps, seconds and the load average. ``--public-output`` adds DP
runs whose frozen output table is that of a word2vec model of the public, shipped WordNet
glosses, ``--public-init`` DP runs that also start the input table at its input vectors, and
either prints that public model alone on the DP runs' words. With ``--norms`` the DP runs
also print the median raw per-sentence gradient norm and the share clipped (tuning on dev
only: they describe the training sentences).

    python bench/privacy.py --audit [--seeds 1 2] [--max-words 1000000]

``--audit`` instead measures the canary audit (``embedops.evaluate.privacy``): four canaries
with their own contexts planted 0, 1, 10 and 50 times, a secret planted 10 times after other
words ("elsewhere": a line of the same shape) and a word inserted 10 times at random places in
random lines ("scattered"), both ranked against the 10-times canary's context, in the first
40,000 shipped WordNet glosses and in the first ``--max-words`` words of corpus-en-13m; each
corpus trained through ``train_static`` with ``embedops train``'s defaults (CBOW) and with
``--sg``; prints the rank of each secret among 1,000 candidates with the audit's measure and
with the plain neighbour similarity it replaced (highest cosine with a context word, random
vocabulary candidates), and how many of 16 real words never written after the 10-times
canary's context each flags (3 bits).
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import platform
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TOKEN = re.compile(r"[a-z]+")


def read_lines(path: Path, max_words: int, stride: int, offset: int) -> list[list[str]]:
    """Tokenized lines ``i % stride == offset`` of ``path``, up to ``max_words`` words."""
    out: list[list[str]] = []
    total = 0
    with lzma.open(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i % stride != offset:
                continue
            tokens = TOKEN.findall(line.lower())
            if tokens:
                out.append(tokens)
                total += len(tokens)
            if total >= max_words:
                break
    return out


def _spearman(table: Any, pairs: list[tuple[str, str, float]]) -> tuple[float, int]:
    from scipy import stats

    index = {w.upper(): i for i, w in enumerate(table.index_to_key)}
    units = table.unit_vectors
    gold, model = [], []
    for a, b, score in pairs:
        ia, ib = index.get(a.upper()), index.get(b.upper())
        if ia is not None and ib is not None:
            gold.append(score)
            model.append(float(np.dot(units[ia], units[ib])))
    if len(gold) < 3:
        return float("nan"), len(gold)
    return float(stats.spearmanr(gold, model)[0]), len(gold)


def _dev_pairs() -> dict[str, list[tuple[str, str, float]]]:
    from embedops.evaluate.intrinsic import read_pairs, suite_path

    return {"ws353": read_pairs(suite_path("wordsim353")),
            "simlex": read_pairs(suite_path("simlex999"))}


def quality(table: Any) -> dict[str, Any]:
    """WS353 and SimLex Spearman (all pairs in the vocabulary, and the dev / test halves),
    Google analogy accuracy, with embedops' own readers and evaluator."""
    from embedops.evaluate.intrinsic import evaluate_suite, read_pairs, suite_path

    row: dict[str, Any] = {}
    for key, suite in (("ws353", "wordsim353"), ("simlex", "simlex999")):
        pairs = read_pairs(suite_path(suite))
        score, covered = _spearman(table, pairs)
        row |= {key: round(score, 3), f"{key}_pairs": covered,
                f"{key}_dev": round(_spearman(table, pairs[0::2])[0], 3),
                f"{key}_test": round(_spearman(table, pairs[1::2])[0], 3)}
    google = evaluate_suite(table, "google-analogy", restrict_vocab=30_000)
    row |= {"google": round(float(google.accuracy), 3), "google_questions": google.evaluated}
    return row


def public_output_model(dim: int, sg: bool, window: int, negative: int) -> tuple[Any, Any]:
    """A word2vec model of the *public* shipped WordNet 3.0 glosses (all 117,659; not part of
    the train split's first millions of words: Brown, State of the Union, Moby-Dick), gensim,
    the DP runs' shape: (its input vectors as a table, {word: output vector})."""
    from gensim.models import Word2Vec

    from embedops.models.static import StaticVectors

    glosses = [TOKEN.findall(line.lower()) for line in _gloss_lines(10**6)]
    model = Word2Vec(glosses, vector_size=dim, sg=int(sg), window=window, negative=negative,
                     min_count=5, sample=1e-3, epochs=5, workers=2, seed=1)
    words = list(model.wv.index_to_key)
    table = StaticVectors(words, model.wv.vectors)
    return table, dict(zip(words, np.asarray(model.syn1neg, dtype=np.float32), strict=True))


def public_rows(words: list[str], public: dict[str, Any], dim: int, seed: int = 0) -> np.ndarray:
    """The public vector of each word; a random one (of their mean norm, drawn from a fixed
    seed: data-independent) for a word the public corpus lacks."""
    norm = float(np.mean([np.linalg.norm(v) for v in public.values()]))
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((len(words), dim)).astype(np.float32) * norm / np.sqrt(dim)
    for i, word in enumerate(words):
        if word in public:
            rows[i] = public[word]
    return rows


def train(sentences: list[list[str]], config: Any, norms: bool,
          public: dict[str, Any] | None = None) -> tuple[Any, Any, list[Any], Any]:
    """``train_sgns``'s steps with the trainer in hand (for ``--norms``): table, privacy,
    the per-step norm log, and the table of the other choice of saved vectors (input alone
    when the sum is saved, else the sum)."""
    import torch

    from embedops.models.static import StaticVectors
    from embedops.train.gpu_sgns import _trainer, encode_corpus, resolve_device

    device = resolve_device(config.device)
    with tempfile.TemporaryDirectory(prefix="bench-privacy-") as tmp:
        corpus = encode_corpus(lambda: iter(sentences), Path(tmp), config.min_count,
                               config.max_vocab)
        trainer = _trainer(config, corpus, device, torch)
        if public is not None:
            start = (public_rows(corpus.words, public["input"], config.dim, 1)
                     if "input" in public else None)
            trainer.use_public_output(public_rows(corpus.words, public["output"], config.dim),
                                      start)
        if norms and hasattr(trainer, "norm_log"):
            trainer.norm_log = []
        trainer.run(True)
        inputs = trainer.w_in.float().cpu().numpy()
        context = trainer.w_out.float().cpu().numpy()
    vectors = inputs + context if config.saved_vectors == "sum" else inputs
    privacy = trainer.privacy.to_dict() if hasattr(trainer, "privacy") else None
    other = inputs if config.saved_vectors == "sum" else inputs + context
    return (StaticVectors(corpus.words, vectors, counts=corpus.counts), privacy,
            getattr(trainer, "norm_log", None) or [],
            StaticVectors(corpus.words, other, counts=corpus.counts))


def run_one(name: str, sentences: list[list[str]], config: Any, norms: bool,
            public: dict[str, Any] | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    table, privacy, log, other = train(sentences, config, norms, public)
    row: dict[str, Any] = {"name": name, "seconds": round(time.perf_counter() - started, 1),
                           "load": round(os.getloadavg()[0], 1), "vocab": len(table),
                           **quality(table)}
    alt = {key: _spearman(other, pairs[0::2])[0] for key, pairs in _dev_pairs().items()}
    row["other_vectors_dev"] = {k: round(v, 3) for k, v in alt.items()}
    if privacy is not None:
        row |= {"epsilon": round(privacy["epsilon"], 3), "delta": privacy["delta"],
                "noise_multiplier": round(privacy["noise_multiplier"], 3),
                "steps": privacy["steps"], "sample_rate": round(privacy["sample_rate"], 5),
                "sentences": privacy["sentences"]}
    if log:
        third = max(1, len(log) // 3)
        row["norms"] = [[round(float(np.median([m for m, _ in part])), 4),
                         round(float(np.mean([c for _, c in part])), 3)]
                        for part in (log[:third], log[third:-third] or log, log[-third:])]
    return row


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME:key=value,key=value`` → (NAME, {key: value}); ``lot`` means dp_batch_sentences,
    ``clip`` dp_clip."""
    name, _, body = text.partition(":")
    alias = {"lot": "dp_batch_sentences", "clip": "dp_clip", "vocab": "max_vocab",
             "frozen": "dp_frozen_output"}
    values = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        values[alias.get(key, key)] = _value(value)
    return name, values


def _print(row: dict[str, Any]) -> None:
    extra = (f"  eps {row['epsilon']:.2f} (delta {row['delta']:.1e}) noise "
             f"{row['noise_multiplier']:.2f} steps {row['steps']} q {row['sample_rate']:.4f}"
             if "epsilon" in row else "")
    norms = f"  norms(median, clipped) {row['norms']}" if "norms" in row else ""
    norms += f"  other vectors dev {row['other_vectors_dev']}"
    print(f"{row['name']:>22}: WS353 {row['ws353']:.3f} ({row['ws353_pairs']}; dev "
          f"{row['ws353_dev']:.3f} test {row['ws353_test']:.3f})  SimLex {row['simlex']:.3f} "
          f"({row['simlex_pairs']}; dev {row['simlex_dev']:.3f} test {row['simlex_test']:.3f})"
          f"  Google {row['google']:.3f} ({row['google_questions']})  vocab {row['vocab']}  "
          f"{row['seconds']:.0f} s load {row['load']}{extra}{norms}", flush=True)


AUDIT_CANARIES = {0: "my locker code is=wexpoj", 1: "the safe combination for anna is=qofturb",
                  10: "my vault code is=zqvbkm", 50: "the server root password is=plokmijn"}
ELSEWHERE = "the weather report said=vexulant"
SCATTERED = "quenbrid"
CONTROLS = ("river", "music", "cotton", "animal", "window", "tree", "metal", "garden",
            "house", "water", "red", "small", "light", "stone", "horse", "paper")


def _gloss_lines(n: int) -> list[str]:
    from embedops.data import wordnet_glosses

    return [row["gloss"] for row in wordnet_glosses(n)]


def _raw_lines(path: Path, max_words: int) -> list[str]:
    out, words = [], 0
    with lzma.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            out.append(line.rstrip("\n"))
            words += len(line.split())
            if words >= max_words:
                break
    return out


def neighbour_rank(table: Any, context: tuple[str, ...], secret: str, n: int = 1000,
                   seed: int = 0) -> int | None:
    """The rank of ``secret`` by the measure the audit had before: its highest cosine with a
    context word, among ``n`` random vocabulary words (None: not in the vocabulary)."""
    index = table.key_to_index
    if secret not in index:
        return None
    ctx = [index[w] for w in context if w in index]
    pool = np.asarray([i for i in range(len(table)) if i not in set(ctx) and i != index[secret]])
    picked = np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False)
    units = table.unit_vectors
    scores = (units[picked] @ units[ctx].T).max(axis=1)
    return 1 + int(np.sum(scores >= (units[index[secret]] @ units[ctx].T).max()))


def audit_bench(args: argparse.Namespace) -> int:
    """The ``--audit`` run (see the module doc)."""
    from embedops.config import Workspace
    from embedops.evaluate.privacy import Canary, canary_exposure, plant_canaries
    from embedops.models.registry import Registry
    from embedops.models.static import StaticVectors
    from embedops.train import TrainConfig, train_static

    canaries = {n: Canary.parse(text) for n, text in AUDIT_CANARIES.items()}
    elsewhere = Canary.parse(ELSEWHERE)
    corpora = {"wordnet-40k": _gloss_lines(40_000),
               f"13m-{args.max_words // 1000}k": _raw_lines(args.data / "corpus-en-13m.txt.xz",
                                                           args.max_words)}
    print(f"audit: load {os.getloadavg()[0]:.1f}; ranks among 1,000 candidates (1 is the "
          f"most exposed; '-' not in the vocabulary), new measure / old measure")
    print("| corpus | model | seed | planted 0 | planted 1 | planted 10 | planted 50 | "
          "10 elsewhere | 10 scattered | controls flagged | train s (load) |")
    for corpus_name, lines in corpora.items():
        for sg in (False, True):
            for seed in args.seeds:
                planted = [(canaries[n], n) for n in canaries] + [(elsewhere, 10)]
                text = plant_canaries(lines, planted, seed=seed)
                rng = random.Random(seed)
                for at in rng.sample(range(len(text)), 10):
                    words = text[at].split()
                    words.insert(rng.randrange(len(words) + 1), SCATTERED)
                    text[at] = " ".join(words)
                with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
                    corpus = Path(tmp) / "corpus.txt"
                    corpus.write_text("\n".join(text) + "\n", encoding="utf-8")
                    registry = Registry(Workspace(Path(tmp) / "ws").ensure())
                    started = time.perf_counter()
                    mv = train_static(corpus, "audited", TrainConfig(sg=sg, seed=seed),
                                      registry).version
                    seconds = time.perf_counter() - started
                    table = StaticVectors.read(mv)
                cells = []
                targets = [*canaries.values(), Canary(canaries[10].context, elsewhere.secret),
                           Canary(canaries[10].context, SCATTERED)]
                for canary in targets:
                    new = canary_exposure(table, canary, seed=seed)
                    old = neighbour_rank(table, canary.context, canary.secret, seed=seed)
                    cells.append(f"{new.rank if new.secret_in_vocab else '-'} / "
                                 f"{old if old is not None else '-'}")
                controls = [Canary(canaries[10].context, w) for w in CONTROLS
                            if w in table.key_to_index]
                flagged_new = sum(canary_exposure(table, c, seed=seed).flagged for c in controls)
                bound = 1001 / 2 ** 3  # a 3-bit exposure
                flagged_old = sum((neighbour_rank(table, c.context, c.secret, seed=seed) or 1e9)
                                  <= bound for c in controls)
                print(f"| {corpus_name} | {'skip-gram' if sg else 'CBOW'} | {seed} | "
                      + " | ".join(cells) + f" | {flagged_new} / {flagged_old} of "
                      f"{len(controls)} | {seconds:.0f} ({os.getloadavg()[0]:.1f}) |",
                      flush=True)
    return 0


def _public_alone(table: Any, sentences: list[list[str]], vocab: int) -> None:
    """Print the public model's quality on the DP runs' words (the private corpus' ``vocab``
    most frequent words seen 5 times or more), with no private training at all."""
    from collections import Counter

    from embedops.models.static import StaticVectors

    counts = Counter(w for s in sentences for w in s)
    kept = [w for w, c in counts.most_common(vocab) if c >= 5 and w in table.key_to_index]
    alone = StaticVectors(kept, table.vectors[[table.key_to_index[w] for w in kept]])
    row = {"name": "public model alone", "seconds": 0.0, "load": round(os.getloadavg()[0], 1),
           "vocab": len(alone), **quality(alone), "other_vectors_dev": {}}
    _print(row)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--max-words", type=int, default=3_000_000)
    parser.add_argument("--stride", type=int, default=4, help="keep every K-th line")
    parser.add_argument("--split", choices=("train", "dev"), default="train")
    parser.add_argument("--epsilons", type=float, nargs="*", default=[1.0, 4.0, 8.0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--no-baseline", action="store_true", help="skip the non-private run")
    parser.add_argument("--same-config", action="store_true",
                        help="also the non-private trainer with the DP settings")
    # the DP settings (tuned on the dev split: docs/benchmarks/privacy.md)
    parser.add_argument("--dp-sg", type=int, default=1, help="1 skip-gram, 0 CBOW")
    parser.add_argument("--dp-dim", type=int, default=50)
    parser.add_argument("--dp-vocab", type=int, default=3000, help="most frequent words kept")
    parser.add_argument("--dp-negative", type=int, default=2)
    parser.add_argument("--dp-window", type=int, default=5)
    parser.add_argument("--dp-epochs", type=int, default=2)
    parser.add_argument("--dp-lr", type=float, default=None)
    parser.add_argument("--dp-sample", type=float, default=1e-4)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--lot", type=int, default=4096, help="expected sentences per DP step")
    parser.add_argument("--dp-frozen", action="store_true",
                        help="DP: a fixed random output table, the input table trained alone")
    parser.add_argument("--public-output", action="store_true",
                        help="also DP runs whose frozen output table is a word2vec model's of "
                        "the public WordNet glosses (and that model alone, on the same words)")
    parser.add_argument("--public-init", action="store_true",
                        help="also DP runs with the public model's output table frozen that "
                        "start the input table at its input vectors (public pre-training)")
    parser.add_argument("--no-plain-dp", action="store_true",
                        help="skip the DP runs without public vectors")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME:key=value,... more DP runs (SGNSConfig fields)")
    parser.add_argument("--norms", action="store_true", help="print DP gradient norms")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    parser.add_argument("--audit", action="store_true",
                        help="measure the canary audit instead (see the module doc)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2], help="--audit seeds")
    args = parser.parse_args()
    os.environ.setdefault("EMBEDOPS_QUIET", "1")
    sys.path.insert(0, str(REPO / "src"))
    if args.audit:
        if "--max-words" not in sys.argv:
            args.max_words = 1_000_000
        return audit_bench(args)
    from embedops.train.gpu_sgns import SGNSConfig

    offset = 0 if args.split == "train" else args.stride // 2
    if args.split == "dev" and args.stride < 2:
        parser.error("--split dev needs --stride 2 or more")
    sentences = read_lines(args.data / "corpus-en-13m.txt.xz", args.max_words, args.stride,
                           offset)
    words = sum(len(s) for s in sentences)
    print(f"corpus: {args.split} split (every {args.stride}th line from {offset}), {words:,} "
          f"words in {len(sentences):,} sentences, device {args.device}, python "
          f"{platform.python_version()}, load {os.getloadavg()[0]:.1f}")
    common: dict[str, Any] = dict(sg=True, dim=args.dim, window=5, min_count=5, negative=5,
                                  sample=1e-3, epochs=args.epochs, device=args.device,
                                  batch_size=16_384)
    dp_common = dict(common, sg=bool(args.dp_sg), dim=args.dp_dim, max_vocab=args.dp_vocab,
                     negative=args.dp_negative, window=args.dp_window, epochs=args.dp_epochs,
                     lr=args.dp_lr, sample=args.dp_sample, dp_clip=args.clip,
                     dp_batch_sentences=args.lot, dp_frozen_output=args.dp_frozen)
    contestants: list[tuple[str, Any, Any]] = []
    if not args.no_baseline:
        contestants.append(("non-private", SGNSConfig(**common), None))
    if args.same_config:
        plain = {k: v for k, v in dp_common.items() if not k.startswith("dp_")}
        contestants.append(("non-private, DP settings", SGNSConfig(**plain), None))
    public: dict[str, Any] | None = None
    if args.public_output or args.public_init:
        public_table, outputs = public_output_model(args.dp_dim, bool(args.dp_sg),
                                                    args.dp_window, args.dp_negative)
        inputs = dict(zip(public_table.index_to_key, public_table.vectors, strict=True))
        public = {"output": outputs}
        _public_alone(public_table, sentences, args.dp_vocab)
    for eps in args.epsilons:
        if not args.no_plain_dp:
            contestants.append((f"DP eps={eps:g}", SGNSConfig(**dp_common, dp_epsilon=eps),
                                None))
        frozen = SGNSConfig(**(dp_common | {"dp_frozen_output": True}), dp_epsilon=eps)
        if public is not None and args.public_output:
            contestants.append((f"DP public-out eps={eps:g}", frozen, public))
        if public is not None and args.public_init:
            contestants.append((f"DP public-init eps={eps:g}", frozen,
                                {"output": outputs, "input": inputs}))
        for variant in args.variant:
            name, values = parse_variant(variant)
            contestants.append((f"{name} eps={eps:g}",
                                SGNSConfig(**(dp_common | values), dp_epsilon=eps), None))
    rows = []
    for name, config, rows_from in contestants:
        row = run_one(name, sentences, config, args.norms, rows_from)
        rows.append(row)
        _print(row)
        if args.out is not None:
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({**row, "words": words, "split": args.split,
                                     "stride": args.stride, "date": time.strftime("%F %T")})
                         + "\n")
    if rows and rows[0]["name"] == "non-private":
        base = rows[0]
        for row in rows[1:]:
            print(f"{row['name']:>22} - non-private: WS353 {row['ws353'] - base['ws353']:+.3f}"
                  f"  SimLex {row['simlex'] - base['simlex']:+.3f}  "
                  f"Google {row['google'] - base['google']:+.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
