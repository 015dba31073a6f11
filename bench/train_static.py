"""Static training benchmark: embedops ``train_static`` against plain gensim, side by side.

Plain gensim (the anchor): ``simple_preprocess`` over every line of the corpus, then
``Word2Vec`` (dim 100, window 5, min_count 5, negative 5, 5 epochs, 2 workers). embedops:
``train_static`` end to end (read + redact + normalize + tokenize + train + publish), first
with the anchor's hyper-parameters, then with embedops' defaults. Both models are scored with
gensim's own evaluators on WS353, SimLex-999 and the Google analogies.

    .venv/bin/python bench/train_static.py [--data ../shared/data] [--runs cbow,sg,defaults]
"""

from __future__ import annotations

import argparse
import json
import lzma
import resource
import tempfile
import time
from pathlib import Path
from typing import Any


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the tokenizing
    workers): a measure that contention from other jobs on the machine barely changes."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


ANCHOR = dict(vector_size=100, window=5, min_count=5, negative=5, epochs=5, workers=2)
REPO = Path(__file__).resolve().parent.parent


SKIP_EVAL = {"value": False}


def evaluate(kv: Any) -> dict[str, float]:
    """WS353 / SimLex Spearman and Google analogy accuracy with gensim's evaluators."""
    from gensim.test.utils import datapath

    if SKIP_EVAL["value"]:
        return {}
    ws = kv.evaluate_word_pairs(datapath("wordsim353.tsv"))
    sl = kv.evaluate_word_pairs(datapath("simlex999.txt"))
    analogy, _ = kv.evaluate_word_analogies(datapath("questions-words.txt"))
    return {
        "ws353": round(float(ws[1][0]), 3),
        "ws353_oov%": round(float(ws[2]), 1),
        "simlex": round(float(sl[1][0]), 3),
        "simlex_oov%": round(float(sl[2]), 1),
        "google": round(float(analogy), 3),
    }


def run_gensim(corpus: Path, sg: bool) -> dict[str, Any]:
    """The anchor: simple_preprocess into memory, then Word2Vec."""
    from gensim.models import Word2Vec
    from gensim.utils import simple_preprocess

    started, cpu = time.perf_counter(), cpu_seconds()
    with lzma.open(corpus, "rt", encoding="utf-8") as fh:
        sentences = [toks for line in fh if (toks := simple_preprocess(line))]
    prep = time.perf_counter() - started
    model = Word2Vec(sentences, sg=int(sg), seed=1, **ANCHOR)
    total, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return {"prep_s": round(prep, 1), "train_s": round(total - prep, 1),
            "total_s": round(total, 1), "cpu_s": round(cpu, 1), **evaluate(model.wv)}


def run_embedops(corpus: Path, config: Any) -> dict[str, Any]:
    """embedops end to end, into a throw-away workspace; scored from the published files."""
    from gensim.models import KeyedVectors

    from embedops.config import Workspace
    from embedops.models.registry import Registry
    from embedops.models.static import StaticVectors
    from embedops.train import train_static

    with tempfile.TemporaryDirectory() as home:
        registry = Registry(Workspace(Path(home)))
        started, cpu = time.perf_counter(), cpu_seconds()
        result = train_static(corpus, "bench", config, registry)
        total, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        table = StaticVectors.read(result.version)
    kv = KeyedVectors(table.dim)
    kv.add_vectors(table.index_to_key, table.vectors)
    prep = total - result.train_seconds
    return {"prep_s": round(prep, 1), "train_s": round(result.train_seconds, 1),
            "total_s": round(total, 1), "cpu_s": round(cpu, 1), **evaluate(kv)}


def configs(names: list[str]) -> dict[str, tuple[bool, Any]]:
    """Each run: (anchor sg flag, embedops TrainConfig)."""
    from embedops.train import TrainConfig

    anchor = dict(dim=100, window=5, min_count=5, negative=5, epochs=5, workers=2)
    table = {
        "cbow": (False, TrainConfig(sg=False, **anchor)),
        "sg": (True, TrainConfig(sg=True, **anchor)),
        "defaults": (False, TrainConfig()),
    }
    return {n: table[n] for n in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--runs", default="cbow,defaults", help="comma list: cbow, sg, defaults")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--no-eval", action="store_true", help="timings only")
    args = parser.parse_args()
    SKIP_EVAL["value"] = args.no_eval
    from embedops.progress import set_quiet

    set_quiet(True)
    corpus = args.data / "corpus-en-13m.txt.xz"
    anchors: dict[bool, dict[str, Any]] = {}
    results = {}
    for name, (sg, config) in configs(args.runs.split(",")).items():
        if sg not in anchors:
            anchors[sg] = run_gensim(corpus, sg)
            print(f"gensim {'sg' if sg else 'cbow'}: {json.dumps(anchors[sg])}", flush=True)
        ours = run_embedops(corpus, config)
        ratio = round(ours["total_s"] / anchors[sg]["total_s"], 2)
        cpu_ratio = round(ours["cpu_s"] / anchors[sg]["cpu_s"], 2)
        results[name] = {"gensim": anchors[sg], "embedops": ours, "time_ratio": ratio,
                         "cpu_ratio": cpu_ratio}
        print(f"embedops {name}: {json.dumps(ours)}  time ratio {ratio}x, cpu ratio "
              f"{cpu_ratio}x", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
