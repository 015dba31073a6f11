"""embedops' torch word2vec trainer against gensim skip-gram, side by side in one run.

    python bench/train_gpu.py [--data ../shared/data] [--device cuda] [--max-lines N]
    python bench/train_gpu.py --device cuda --skip-gensim --sweep configs.json --out results.jsonl

Both read the same raw corpus, tokenized the same way ([a-z]+ after lowercasing), with
min_count 5, dim 100, window 5, 5 negatives, sample 1e-3, 5 epochs. gensim uses 2 worker threads
(the CPU baseline of the project's machines); embedops runs on ``--device``. Prints words/s,
the ratio, and WS353 / SimLex-999 / Google analogy for both.

Timing: both sides are timed on training alone (embedops: after the corpus is mapped to ids and
the tables are on the device; gensim: ``train`` after ``build_vocab``); the vocabulary passes are
reported apart. words/s = raw corpus tokens x epochs / training seconds for both, so the ratio
is the ratio of training times. ``bench/gpu_run.sh`` is the script run on the lent GPU machine.

``--sweep FILE`` (a JSON list of ``{"name": ..., <SGNSConfig field>: value, ...}``) trains each
config in turn on the corpus read once, embedops only, appending one JSON line per config to
``--out`` (and a line per config started to ``--out`` + ``.attempts``; ``"score_variants": true`` in
an entry also scores the input vectors alone and input + context); configs already named in
either file are skipped, so a rerun after a crash goes on with the next one
(``bench/gpu_sweep.sh`` does that on the GPU machine).
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
from dataclasses import fields
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


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The SGNSConfig fields set on the command line (the rest keep the trainer's defaults)."""
    out: dict[str, Any] = {"sg": bool(args.sg), "batch_size": args.batch_size}
    for name in ("update", "lr", "lr_schedule", "accumulator", "apply_mode", "shuffle", "vectors"):
        if getattr(args, name) is not None:
            out[name] = getattr(args, name)
    return out


def run_embedops(
    sentences: list[list[str]], n_words: int, device: str, overrides: dict[str, Any]
) -> dict:
    from gensim.models import KeyedVectors

    from embedops.train.gpu_sgns import SGNSConfig, train_sgns

    overrides = dict(overrides)
    variants = bool(overrides.pop("score_variants", False))  # input alone, input + context
    known = {f.name for f in fields(SGNSConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"not SGNSConfig fields: {unknown}")
    config = SGNSConfig(**{"epochs": EPOCHS, **overrides, "device": device})
    started = time.perf_counter()
    result = train_sgns(lambda: iter(sentences), config, quiet=True)
    wall = time.perf_counter() - started
    row = {
        "device": result.device,
        "sg": int(config.sg),
        "batch_size": config.batch_size,
        "update": config.update,
        "lr": config.base_lr,
        "lr_schedule": config.schedule,
        "accumulator": config.accumulator,
        "apply_mode": config.apply_mode,
        "shuffle": config.order,
        "vectors": config.saved_vectors,
        "chunk_tokens": config.chunk_tokens,
        "skip_target_negatives": config.skip_target_negatives,
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
    if variants and result.input_vectors is not None and result.context_vectors is not None:
        for suffix, vectors in (
            ("input", result.input_vectors),
            ("in_plus_out", result.input_vectors + result.context_vectors),
        ):
            kv = KeyedVectors(config.dim)
            kv.add_vectors(result.table.index_to_key, vectors)
            row.update({f"{k}_{suffix}": v for k, v in scores(kv).items()})
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


def sweep(sentences: list[list[str]], n_words: int, args: argparse.Namespace) -> None:
    """Each config of ``args.sweep`` in turn; one failing does not stop the next."""
    configs = json.loads(args.sweep.read_text())
    out = args.out or Path("sweep.jsonl")
    attempts = out.with_name(out.name + ".attempts")
    seen = set()
    for path in (out, attempts):
        if path.exists():
            seen |= {json.loads(line)["name"] for line in path.read_text().splitlines() if line}
    env = environment(args.device)
    for entry in configs:
        name, overrides = entry["name"], {k: v for k, v in entry.items() if k != "name"}
        if name in seen:
            print(f"=== {name}: already attempted, skipped", flush=True)
            continue
        with open(attempts, "a") as fh:
            fh.write(json.dumps({"name": name}) + "\n")
        print(f"=== {name}: {overrides}", flush=True)
        started = time.perf_counter()
        try:
            row = run_embedops(sentences, n_words, args.device, overrides)
        except Exception as exc:  # noqa: BLE001 - recorded, and the next config still runs
            traceback.print_exc()
            row = {"error": f"{type(exc).__name__}: {exc}"}
        row = {"name": name, "config": overrides, **row, "tokens": n_words, "env": env}
        row["wall_seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(row), flush=True)
        with open(out, "a") as fh:
            fh.write(json.dumps(row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default_data = Path(__file__).resolve().parents[2] / "shared/data"
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sg", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=65536)
    parser.add_argument("--update", default=None, help="adagrad (default) or sgd")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--lr-schedule", default=None, help="linear or constant")
    parser.add_argument("--accumulator", default=None, help="Adagrad's: row or element")
    parser.add_argument("--apply-mode", default=None, help="auto, dense or sparse")
    parser.add_argument("--shuffle", default=None, help="auto (default), corpus or chunk")
    parser.add_argument("--vectors", default=None, help="auto (default), sum or input")
    parser.add_argument("--max-lines", type=int, default=None)
    parser.add_argument("--skip-gensim", action="store_true")
    parser.add_argument("--sweep", type=Path, default=None, help="JSON list of configs")
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
    if args.sweep is not None:
        sweep(sentences, n_words, args)
        return
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
        ("embedops", lambda: run_embedops(sentences, n_words, args.device, cli_overrides(args))),
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
