"""embedops' torch word2vec trainer against gensim skip-gram, side by side in one run.

    python bench/train_gpu.py [--data ../shared/data] [--device cuda] [--max-lines N]

Both read the same raw corpus, tokenized the same way ([a-z]+ after lowercasing), with
min_count 5, dim 100, window 5, 5 negatives, sample 1e-3, 5 epochs. gensim uses 2 worker threads
(the CPU baseline of the project's machines); embedops runs on ``--device``. Prints words/s,
the ratio, and WS353 / SimLex-999 / Google analogy for both.
"""

from __future__ import annotations

import argparse
import json
import lzma
import re
import time
from pathlib import Path

from gensim.models import KeyedVectors, Word2Vec
from gensim.test.utils import datapath

from embedops.train.gpu_sgns import SGNSConfig, train_sgns

TOKEN = re.compile(r"[a-z]+")


def load_sentences(path: Path, max_lines: int | None) -> list[list[str]]:
    out = []
    with lzma.open(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if max_lines is not None and i >= max_lines:
                break
            tokens = TOKEN.findall(line.lower())
            if tokens:
                out.append(tokens)
    return out


def scores(kv: KeyedVectors) -> dict[str, float]:
    return {
        "ws353": round(kv.evaluate_word_pairs(datapath("wordsim353.tsv"))[1][0], 3),
        "simlex": round(kv.evaluate_word_pairs(datapath("simlex999.txt"))[1][0], 3),
        "google": round(kv.evaluate_word_analogies(datapath("questions-words.txt"))[0], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default_data = Path(__file__).resolve().parents[2] / "shared/data"
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sg", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=65536)
    parser.add_argument("--update", default="adagrad")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--max-lines", type=int, default=None)
    parser.add_argument("--skip-gensim", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()

    sentences = load_sentences(args.data / "corpus-en-13m.txt.xz", args.max_lines)
    n_words = sum(len(s) for s in sentences)
    print(f"corpus: {len(sentences):,} lines, {n_words:,} tokens")
    rows = {}

    config = SGNSConfig(
        sg=bool(args.sg), device=args.device, batch_size=args.batch_size,
        update=args.update, lr=args.lr,
    )
    result = train_sgns(lambda: iter(sentences), config, quiet=True)
    kv = KeyedVectors(config.dim)
    kv.add_vectors(result.table.index_to_key, result.table.vectors)
    rows["embedops"] = {"device": result.device, "seconds": round(result.seconds, 2),
                        "words_per_s": round(result.words_per_second), **scores(kv)}
    print("embedops", rows["embedops"], flush=True)

    if not args.skip_gensim:
        started = time.perf_counter()
        model = Word2Vec(sentences, vector_size=100, window=5, min_count=5, negative=5,
                         sample=1e-3, epochs=5, workers=2, sg=args.sg, seed=1)
        seconds = time.perf_counter() - started
        trained_words = model.corpus_total_words * model.epochs
        rows["gensim"] = {"device": "cpu x2 workers", "seconds": round(seconds, 2),
                          "words_per_s": round(trained_words / seconds), **scores(model.wv)}
        print("gensim  ", rows["gensim"])
        ratio = rows["embedops"]["words_per_s"] / rows["gensim"]["words_per_s"]
        print(f"speed ratio embedops/gensim: {ratio:.1f}x")
        rows["ratio"] = round(ratio, 2)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
