"""The utility cost of differential privacy: the torch word2vec trainer at several epsilons against
the same trainer without DP, side by side in one run.

    python bench/privacy.py [--data ../shared/data] [--max-words 1500000] [--epsilons 1 4 8]

Corpus: the first ``--max-words`` words of ``corpus-en-13m.txt.xz`` (one line a sentence, the
privacy unit), tokenized as ``[a-z]+`` after lowercasing. Every contestant is skip-gram with the
same hyper-parameters (dim, window 5, 5 negatives, sample 1e-3, min_count 5, ``--epochs``,
Adagrad) on ``--device`` (CPU by default: a reduced corpus); the DP runs add DP-SGD with one
sentence a unit, clip ``--clip``, ``--lot`` expected sentences a step and delta 1/N, the noise
solved by opacus' RDP accountant for each epsilon. Prints, and writes to ``--out`` as JSON
lines, WS353 / SimLex-999 (Spearman) and Google analogy accuracy (3CosAdd) of each, the epsilon
spent, the noise multiplier, the steps and the training seconds.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TOKEN = re.compile(r"[a-z]+")


def read_words(path: Path, max_words: int) -> list[list[str]]:
    """Tokenized lines of ``path`` up to ``max_words`` words in all."""
    out: list[list[str]] = []
    total = 0
    with lzma.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            tokens = TOKEN.findall(line.lower())
            if tokens:
                out.append(tokens)
                total += len(tokens)
            if total >= max_words:
                break
    return out


def quality(table: Any) -> dict[str, float]:
    """WS353 and SimLex Spearman, Google analogy accuracy, with embedops' own evaluator."""
    from embedops.evaluate.intrinsic import evaluate_suite

    ws = evaluate_suite(table, "wordsim353")
    simlex = evaluate_suite(table, "simlex999")
    google = evaluate_suite(table, "google-analogy", restrict_vocab=30_000)
    return {"ws353": round(float(ws.spearman), 3), "simlex": round(float(simlex.spearman), 3),
            "google": round(float(google.accuracy), 3)}


def run_one(name: str, sentences: list[list[str]], config: Any) -> dict[str, Any]:
    from embedops.train.gpu_sgns import train_sgns

    started = time.perf_counter()
    result = train_sgns(lambda: iter(sentences), config, quiet=True)
    row: dict[str, Any] = {"name": name, "seconds": round(time.perf_counter() - started, 1),
                           "device": result.device, **quality(result.table)}
    if result.privacy is not None:
        p = result.privacy
        row |= {"epsilon": round(p["epsilon"], 3), "delta": p["delta"],
                "noise_multiplier": round(p["noise_multiplier"], 3), "steps": p["steps"],
                "sample_rate": round(p["sample_rate"], 5), "sentences": p["sentences"]}
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--max-words", type=int, default=1_500_000)
    parser.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 4.0, 8.0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--lot", type=int, default=512, help="expected sentences per DP step")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    args = parser.parse_args()
    os.environ.setdefault("EMBEDOPS_QUIET", "1")
    sys.path.insert(0, str(REPO / "src"))
    from embedops.train.gpu_sgns import SGNSConfig

    sentences = read_words(args.data / "corpus-en-13m.txt.xz", args.max_words)
    words = sum(len(s) for s in sentences)
    print(f"corpus: {words:,} words in {len(sentences):,} sentences, device {args.device}, "
          f"python {platform.python_version()}")
    common = dict(sg=True, dim=args.dim, window=5, min_count=5, negative=5, sample=1e-3,
                  epochs=args.epochs, device=args.device, batch_size=16_384)
    contestants = [("non-private", SGNSConfig(**common))] + [
        (f"DP eps={eps:g}", SGNSConfig(**common, dp_epsilon=eps, dp_clip=args.clip,
                                        dp_batch_sentences=args.lot))
        for eps in args.epsilons]
    rows = []
    for name, config in contestants:
        row = run_one(name, sentences, config)
        rows.append(row)
        extra = (f"  eps {row['epsilon']:.2f} (delta {row['delta']:.1e}), noise "
                 f"{row['noise_multiplier']:.2f}, {row['steps']} steps" if "epsilon" in row
                 else "")
        print(f"{name:>14}: WS353 {row['ws353']:.3f}  SimLex {row['simlex']:.3f}  Google "
              f"{row['google']:.3f}  {row['seconds']:.1f} s{extra}", flush=True)
        if args.out is not None:
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({**row, "words": words, "date": time.strftime("%F")}) + "\n")
    base = rows[0]
    for row in rows[1:]:
        print(f"{row['name']:>14} / non-private: WS353 {row['ws353'] - base['ws353']:+.3f}  "
              f"SimLex {row['simlex'] - base['simlex']:+.3f}  "
              f"Google {row['google'] - base['google']:+.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
