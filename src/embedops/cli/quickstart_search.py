"""The quickstart's second half: store, index, search and evaluate the shipped WordNet glosses.

Steps take the shared ``Quickstart`` state of ``cli/quickstart.py``: a collection of glosses
embedded with the model trained in step 1, an HNSW snapshot, a few searches in each mode, and a
golden set (a synset's word → its gloss) scored the way a CI gate would.
"""

from __future__ import annotations

import json
import lzma
from pathlib import Path
from typing import Any

COLLECTION = "glosses"
GOLDEN_SET = "word-to-gloss"
#: Every n-th synset is stored: ~29k glosses, enough to be realistic and quick on 2 cores.
EVERY = 4
GOLDEN_SIZE = 200
QUERIES = (
    "a large natural stream of water",
    "an instrument for measuring time",
    "a person who treats sick people",
)


def write_gloss_items(path: Path) -> tuple[Path, list[tuple[str, str]]]:
    """Write a JSONL of every ``EVERY``-th synset (id, gloss, pos, lemmas); return it and
    (first lemma, synset id) pairs of single-sense words for the golden set."""
    from embedops.data import wordnet_glosses_path

    pairs: list[tuple[str, str]] = []
    with lzma.open(wordnet_glosses_path(), "rt", encoding="utf-8") as src, open(
        path, "w", encoding="utf-8"
    ) as dst:
        for n, line in enumerate(src):
            if n % EVERY:
                continue
            synset = json.loads(line)
            item = {"id": synset["id"], "text": synset["gloss"], "pos": synset["pos"],
                    "lemmas": synset["lemmas"]}
            dst.write(json.dumps(item) + "\n")
            lemma = synset["lemmas"][0].replace("_", " ")
            if synset["pos"] == "noun" and " " not in lemma:
                pairs.append((lemma, synset["id"]))
    return path, pairs


def step_ingest(qs: Any) -> None:
    """Store the glosses as a collection embedded with the trained model."""
    import tempfile

    qs.say(f"5. store every {EVERY}th WordNet gloss in collection '{COLLECTION}'")
    api = qs.api
    if COLLECTION not in {c.name for c in api.collections.list()}:
        api.collections.create(COLLECTION, model=qs.model_ref)
    served = api.collections.info(COLLECTION).model_version
    if served != qs.model_ref:
        qs.say(f"   (the collection already serves {served}; to move it to {qs.model_ref}: "
               f"'embedops rollout start {COLLECTION} --model {qs.model_ref} --canary 0.1')")
    with tempfile.TemporaryDirectory(dir=api.workspace.staging_dir) as tmp:
        path, pairs = write_gloss_items(Path(tmp) / "glosses.jsonl")
        report = api.ingest(COLLECTION, path, id_field="id", text_field="text")
    qs.results["golden_pairs"] = _spread(pairs, GOLDEN_SIZE)
    qs.say(f"   {report.read:,} read, {report.embedded:,} embedded, {report.unchanged:,} "
           f"unchanged (a re-run embeds nothing), {report.seconds:.1f} s")


def _spread(pairs: list[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    """``n`` pairs taken evenly across the list (deterministic)."""
    step = max(len(pairs) // n, 1)
    return pairs[::step][:n]


def step_index(qs: Any) -> None:
    """Build an HNSW index and publish it as a checksummed snapshot."""
    api = qs.api
    qs.say("6. build an HNSW index, published as a checksummed snapshot")
    api.build_index(COLLECTION, kind="hnsw")
    status = api.index_status(COLLECTION)
    snapshot = status["snapshot"]
    qs.say(f"   snapshot {snapshot['name']}: {snapshot['item_count']:,} items, "
           f"{status['freshness']['stale_items']} not yet indexed ('embedops index verify' "
           f"re-checks every file's sha256)")
    qs.results["index"] = {"snapshot": snapshot["name"], "items": snapshot["item_count"]}


def step_search(qs: Any) -> None:
    """Run a few queries in dense, lexical and hybrid mode."""
    api = qs.api
    qs.say("7. search (dense = word vectors, lexical = BM25, hybrid = fusion of both)")
    for query in QUERIES:
        qs.say(f"   \"{query}\"")
        for mode in ("dense", "lexical", "hybrid"):
            hits = api.search(COLLECTION, query, k=2, mode=mode).hits
            shown = " | ".join(f"{', '.join(h.metadata.get('lemmas', [])[:2])}: {h.text[:40]}"
                               for h in hits)
            qs.say(f"     {mode:<8} {shown}")


def step_golden(qs: Any) -> None:
    """Score a golden set (a word must find its own gloss) in each mode, stored with history."""
    from embedops.monitor.db import MonitorDB
    from embedops.monitor.golden import make_query, run_golden

    api = qs.api
    db = MonitorDB(api.workspace)
    if GOLDEN_SET not in {s.name for s in db.list_sets()}:
        db.create_set(GOLDEN_SET, COLLECTION, "a WordNet noun must retrieve its own gloss")
        db.add_queries(GOLDEN_SET, [make_query(word, [sid])
                                    for word, sid in qs.results["golden_pairs"]])
    qs.say(f"8. golden set '{GOLDEN_SET}' ({len(db.queries(GOLDEN_SET))} queries), "
           f"as 'embedops golden run' would gate a release")
    for mode in ("dense", "lexical", "hybrid"):
        run = run_golden(api, db, COLLECTION, GOLDEN_SET, ks=(1, 10), mode=mode, quiet=True)
        s = run.scores
        qs.say(f"   {mode:<8} recall@10 {s['recall@10']:.3f}  MRR@10 {s['mrr@10']:.3f}")
        qs.results[f"golden_{mode}"] = dict(s)
    db.close()
    qs.say("   next: 'embedops serve' (HTTP API), 'embedops rollout start' (canary a new model)")


STEPS = [step_ingest, step_index, step_search, step_golden]
