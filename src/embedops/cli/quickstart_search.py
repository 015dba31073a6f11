"""The quickstart's second half: store, index, search, gate and migrate the shipped glosses.

Steps take the shared ``Quickstart`` state of ``cli/quickstart.py``: a collection of glosses
embedded with the static model distilled in step 2, an HNSW snapshot, a few searches in each
mode, a golden set (a synset's synonyms → its gloss) scored the way a CI gate would, and a
rollout of MiniLM over the static model, gated by that golden set, then promoted.
"""

from __future__ import annotations

import json
import lzma
from pathlib import Path
from typing import Any

COLLECTION = "glosses"
GOLDEN_SET = "synonyms-to-gloss"
#: Every n-th synset is stored: ~29k glosses, enough to be realistic and quick on 2 cores.
EVERY = 4
GOLDEN_SIZE = 200
#: The canary's share of users in the demo rollout (a production canary starts nearer 0.05).
CANARY_SHARE = 0.5
QUERIES = (  # paraphrases, not the glosses' own words
    "someone who flies planes",
    "a device that tells you what time it is",
    "a person who works the land and grows crops",
)


def write_gloss_items(path: Path) -> tuple[Path, list[tuple[str, str]]]:
    """Write a JSONL of every ``EVERY``-th synset (id, gloss, pos, lemmas); return it and
    (its synonyms, synset id) pairs of the synsets with two or more words, for the golden set:
    "timepiece, timekeeper, horologe" must find "a measuring instrument or device for keeping
    time"."""
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
            if len(synset["lemmas"]) >= 2:
                pairs.append((", ".join(synset["lemmas"]), synset["id"]))
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
    qs.say("7. search (dense = static vectors, lexical = BM25, hybrid = fusion of both)")
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
        db.create_set(GOLDEN_SET, COLLECTION, "a synset's synonyms must retrieve its gloss")
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


def step_rollout(qs: Any) -> None:
    """Roll MiniLM out over the static model as a canary: backfill, index, golden gate on both
    versions, canary traffic, gates, promote."""
    from embedops.lifecycle.gates import GateConfig
    from embedops.lifecycle.service import RolloutService

    api = qs.api
    info = api.collections.info(COLLECTION)
    if info.model_version == qs.teacher_ref:
        qs.say(f"9. '{COLLECTION}' already serves {qs.teacher_ref} (promoted by an earlier run)")
        return
    qs.say(f"9. roll {qs.teacher_ref} out over {info.model_version} as a canary: backfill, "
           "index, golden gate, traffic, promote")
    service = RolloutService(api)
    try:
        manager = service.manager(COLLECTION, "quickstart")
        manager.start(COLLECTION, qs.teacher_ref, share=CANARY_SHARE,
                      gates=GateConfig(golden_set=GOLDEN_SET), index_kind="hnsw")
        state = manager.run_backfill(COLLECTION, quiet=True)
        before = state.golden.get(state.previous, 0.0)
        after = state.golden.get(state.candidate, 0.0)
        qs.say(f"   golden recall@10 (dense): {state.previous} {before:.3f} -> "
               f"{state.candidate} {after:.3f}")
        served = _canary_traffic(service, api, [q for q, _ in qs.results["golden_pairs"]])
        qs.say(f"   {sum(served.values())} searches from {2 * len(qs.results['golden_pairs'])} "
               f"users, routed by user: " + ", ".join(f"{v} {n}" for v, n in served.items()))
        report = manager.gates(state)
        qs.results["rollout"] = {"previous": state.previous, "candidate": state.candidate,
                                 "golden_recall@10": {state.previous: before,
                                                      state.candidate: after},
                                 "routed": served, "gates_passed": report.passed}
        if not report.passed:
            manager.rollback(COLLECTION, "gates: " + "; ".join(report.reasons()))
            qs.say("   the gates held it back, so it was rolled back: "
                   + "; ".join(report.reasons()))
            return
        manager.promote(COLLECTION)
        manager.finish(COLLECTION)
    finally:
        service.close()
    qs.say(f"   gates passed (golden recall, p99, errors): {state.candidate} now serves "
           f"'{COLLECTION}'")
    for query in QUERIES:
        hits = api.search(COLLECTION, query, k=2, mode="dense").hits
        shown = " | ".join(f"{', '.join(h.metadata.get('lemmas', [])[:2])}: {h.text[:40]}"
                           for h in hits)
        qs.say(f"   \"{query}\" dense: {shown}")
    qs.say("   next: 'embedops serve' (HTTP API, web console at /ui), 'embedops golden run' "
           "in CI")


def _canary_traffic(service: Any, api: Any, queries: list[str]) -> dict[str, int]:
    """Each query searched by two simulated users through the rollout router (which sends a
    user to the canary or the active version by a hash of their id); searches per version."""
    served: dict[str, int] = {}
    for n, query in enumerate(queries * 2):
        result = service.router.search(
            COLLECTION, f"user-{n}", None, None,
            lambda version, q=query: api.search(COLLECTION, q, k=10, model_version=version))
        served[result.model_version] = served.get(result.model_version, 0) + 1
    return served


STEPS = [step_ingest, step_index, step_search, step_golden, step_rollout]
