"""embedops' torch word2vec trainer against gensim skip-gram, side by side in one run.

    python bench/train_gpu.py [--data ../shared/data] [--device cuda] [--max-lines N]

Both read the same raw corpus, tokenized the same way ([a-z]+ after lowercasing), with
min_count 5, dim 100, window 5, 5 negatives, sample 1e-3, 5 epochs. gensim uses 2 worker threads
(the CPU baseline of the project's machines); embedops runs on ``--device``. Prints words/s,
the ratio, and WS353 / SimLex-999 / Google analogy for both.

Timing: both sides are timed on training alone (embedops: after the corpus is mapped to ids and
the tables are on the device; gensim: ``train`` after ``build_vocab``); the vocabulary passes are
reported apart. words/s = raw corpus tokens x epochs / training seconds for both, so the ratio
is the ratio of training times. ``bench/gpu_run.sh`` is the script run on the lent GPU machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import lzma
import platform
import re
import time
import traceback
from pathlib import Path
from typing import Any

TOKEN = re.compile(r"[a-z]+")
EPOCHS = 5


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


def scores(kv: Any) -> dict[str, float]:
    from gensim.test.utils import datapath

    return {
        "ws353": round(float(kv.evaluate_word_pairs(datapath("wordsim353.tsv"))[1][0]), 3),
        "simlex": round(float(kv.evaluate_word_pairs(datapath("simlex999.txt"))[1][0]), 3),
        "google": round(float(kv.evaluate_word_analogies(datapath("questions-words.txt"))[0]), 3),
    }


def environment(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available() and device != "cpu":
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    try:
        import gensim

        info["gensim"] = gensim.__version__
    except ImportError:
        pass
    return info


def run_embedops(sentences: list[list[str]], n_words: int, args: argparse.Namespace) -> dict:
    from gensim.models import KeyedVectors

    from embedops.train.gpu_sgns import SGNSConfig, train_sgns

    config = SGNSConfig(
        sg=bool(args.sg),
        device=args.device,
        batch_size=args.batch_size,
        update=args.update,
        lr=args.lr,
        epochs=EPOCHS,
    )
    started = time.perf_counter()
    result = train_sgns(lambda: iter(sentences), config, quiet=True)
    wall = time.perf_counter() - started
    row = {
        "device": result.device,
        "sg": args.sg,
        "batch_size": args.batch_size,
        "update": args.update,
        "lr": config.base_lr,
        "seconds": round(result.seconds, 2),
        "words_per_s": round(n_words * EPOCHS / result.seconds),
        "trainer_words_per_s": round(result.words_per_second),  # in-vocabulary tokens only
        "setup_seconds": round(wall - result.seconds, 2),  # vocab + id map + device tables
        "pairs": result.pairs,
    }
    print("embedops trained", row, flush=True)
    kv = KeyedVectors(config.dim)
    kv.add_vectors(result.table.index_to_key, result.table.vectors)
    row.update(scores(kv))
    return row


def run_gensim(sentences: list[list[str]], n_words: int, sg: int) -> dict:
    from gensim.models import Word2Vec

    started = time.perf_counter()
    model = Word2Vec(
        vector_size=100,
        window=5,
        min_count=5,
        negative=5,
        sample=1e-3,
        epochs=EPOCHS,
        workers=2,
        sg=sg,
        seed=1,
    )
    model.build_vocab(sentences)
    vocab_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model.train(sentences, total_examples=model.corpus_count, epochs=model.epochs)
    seconds = time.perf_counter() - started
    row = {
        "device": "cpu x2 workers",
        "sg": sg,
        "seconds": round(seconds, 2),
        "words_per_s": round(n_words * EPOCHS / seconds),
        "setup_seconds": round(vocab_seconds, 2),
    }
    print("gensim trained", row, flush=True)
    row.update(scores(model.wv))
    return row


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
    logging.basicConfig(format="%(asctime)s %(name)s %(message)s", level=logging.WARNING)
    logging.getLogger("gensim.models.word2vec").setLevel(logging.INFO)  # per-epoch words/s

    started = time.perf_counter()
    sentences = load_sentences(args.data / "corpus-en-13m.txt.xz", args.max_lines)
    n_words = sum(len(s) for s in sentences)
    print(
        f"corpus: {len(sentences):,} lines, {n_words:,} tokens "
        f"(read in {time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    rows: dict[str, Any] = {
        "env": environment(args.device),
        "tokens": n_words,
        "epochs": EPOCHS,
        "args": {k: str(v) for k, v in vars(args).items()},
    }

    def save() -> None:
        if args.out:
            args.out.write_text(json.dumps(rows, indent=2))

    # Each side runs even when the other fails, so one run on a lent machine says all it can.
    for name, job in [
        ("embedops", lambda: run_embedops(sentences, n_words, args)),
        ("gensim", lambda: run_gensim(sentences, n_words, args.sg)),
    ]:
        if name == "gensim" and args.skip_gensim:
            continue
        try:
            rows[name] = job()
            print(f"{name:8s}", rows[name], flush=True)
        except Exception as exc:  # noqa: BLE001 - recorded, and the other side still runs
            traceback.print_exc()
            rows[name] = {"error": f"{type(exc).__name__}: {exc}"}
        save()
    if "words_per_s" in rows.get("embedops", {}) and "words_per_s" in rows.get("gensim", {}):
        ratio = rows["embedops"]["words_per_s"] / rows["gensim"]["words_per_s"]
        print(f"speed ratio embedops/gensim: {ratio:.1f}x (target 20x)")
        rows["ratio"] = round(ratio, 2)
        save()


if __name__ == "__main__":
    main()
