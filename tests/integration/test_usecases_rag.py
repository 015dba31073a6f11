"""RAG context end to end on real text (gensim's Lee news corpus as long files): chunking by the
model's own tokens, parent links and offsets, retrieval packed into a token budget with
citations, through Python, the CLI and HTTP, and the errors for bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from usecases_data import engine_on_copy

from embedops.cli.main import main
from embedops.config import Workspace
from embedops.engine.facade import Embedops
from embedops.errors import InvalidInput, NotFound
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec
from embedops.usecases import rag

LINES = 60  # Lee documents per file: ~50k characters each


def _lee(lee: Path) -> list[str]:
    return [x for x in lee.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Path]:
    from gensim.models import Word2Vec
    from gensim.test.utils import datapath

    lines = _lee(Path(datapath("lee_background.cor")))
    root = tmp_path_factory.mktemp("rag")
    docs = root / "docs"
    (docs / "part").mkdir(parents=True)
    (docs / "news-a.txt").write_text("\n".join(lines[:LINES]), encoding="utf-8")
    (docs / "part" / "news-b.md").write_text("\n\n".join(lines[LINES:2 * LINES]),
                                             encoding="utf-8")
    ws = Workspace(root / "ws").ensure()
    spec = TokenizerSpec()
    model = Word2Vec([spec.tokenize(t) for t in lines], vector_size=32, min_count=1, epochs=5,
                     workers=1, seed=3)
    publish_static(Registry(ws), "w2v", StaticVectors.from_gensim(model.wv), kind="word2vec",
                   spec=spec)
    with Embedops(ws) as eo:
        eo.collections.create("news", model="w2v")
        report = rag.ingest_files(eo, "news", [docs], chunk_tokens=120, overlap=30)
        assert report["documents"] == 2 and report["chunks"] == report["written"] > 20
        eo.build_index("news", kind="flat", quiet=True)
    return ws, docs


@pytest.fixture
def eo(built: tuple[Workspace, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
       ) -> Iterator[Embedops]:
    yield from engine_on_copy(built[0].home, tmp_path, monkeypatch)


def test_chunks_link_to_their_parent_with_exact_offsets(eo: Embedops,
                                                        built: tuple[Workspace, Path]) -> None:
    docs = built[1]
    texts = {"news-a.txt": (docs / "news-a.txt").read_text(encoding="utf-8"),
             "part/news-b.md": (docs / "part" / "news-b.md").read_text(encoding="utf-8")}
    items = list(eo.iter_items("news"))
    assert {it.metadata["parent_id"] for it in items} == set(texts)
    count = rag.token_counter(eo, "w2v@1")
    for it in items:
        m = it.metadata
        assert texts[m["parent_id"]][m["start"]:m["end"]] == it.text
        assert it.id == f"{m['parent_id']}#{m['chunk']}" and m["source"] == m["parent_id"]
        assert m["tokens"] == count([it.text])[0] <= 120
    # Chunks begin and end on sentence boundaries (only a sentence longer than a chunk is
    # cut between words).
    bounds = {p: rag.sentences(t) for p, t in texts.items()}
    starts = {(p, a) for p, spans in bounds.items() for a, _ in spans}
    ends = {(p, b) for p, spans in bounds.items() for _, b in spans}
    on_start = sum((it.metadata["parent_id"], it.metadata["start"]) in starts for it in items)
    on_end = sum((it.metadata["parent_id"], it.metadata["end"]) in ends for it in items)
    assert on_start >= 0.9 * len(items) and on_end >= 0.9 * len(items)
    by_parent = sorted((it for it in items if it.metadata["parent_id"] == "news-a.txt"),
                       key=lambda it: it.metadata["chunk"])
    for a, b in zip(by_parent, by_parent[1:], strict=False):
        assert a.metadata["start"] < b.metadata["start"]
        # Nothing between two chunks is lost: at most the spaces between two sentences.
        assert not texts["news-a.txt"][a.metadata["end"]:b.metadata["start"]].strip()
        shared = texts["news-a.txt"][b.metadata["start"]:a.metadata["end"]]
        assert count([shared])[0] <= 30 if shared.strip() else True


def test_writing_a_document_again_replaces_its_chunks(eo: Embedops) -> None:
    again = rag.add_documents(eo, "news", [{"id": "short", "text": "One. Two three. " * 40}],
                              chunk_tokens=20, overlap=0)
    assert again["chunks"] > 2
    same = rag.add_documents(eo, "news", [{"id": "short", "text": "One. Two three. " * 40}],
                             chunk_tokens=20, overlap=0)
    assert same["written"] == 0 and same["removed"] == 0
    fewer = rag.add_documents(eo, "news", [{"id": "short", "text": "One. Two three."}],
                              chunk_tokens=20, overlap=0)
    assert fewer["chunks"] == 1 and fewer["removed"] == again["chunks"] - 1
    assert eo.ids_where("news", {"parent_id": "short"}) == ["short#0"]
    with pytest.raises(InvalidInput, match="without '#'"):
        rag.add_documents(eo, "news", [{"id": "a#b", "text": "x"}])
    with pytest.raises(InvalidInput, match="overlap"):
        rag.add_documents(eo, "news", [{"id": "a", "text": "x"}], chunk_tokens=20, overlap=15)


def test_context_packs_a_budget_with_citations(eo: Embedops, built: tuple[Workspace, Path]
                                               ) -> None:
    text = (built[1] / "news-a.txt").read_text(encoding="utf-8")
    question = "evacuate people from homes in outlying streets at Hill Top"
    ctx = rag.context(eo, "news", question, budget=300)
    assert ctx.passages and ctx.tokens_used == sum(p.tokens for p in ctx.passages) <= 300
    hit = next(p for p in ctx.passages if "outlying streets" in p.text)
    assert hit.parent_id == "news-a.txt" and text[hit.start:hit.end] == hit.text
    first = ctx.passages[0]
    assert ctx.to_dict()["passages"][0]["citation"] == \
        f"{first.parent_id}:{first.start}-{first.end}"
    spans = [(p.parent_id, p.start, p.end) for p in ctx.passages]
    for n, (parent, a, b) in enumerate(spans):
        for other, c, d in spans[n + 1:]:
            assert other != parent or 2 * (min(b, d) - max(a, c)) <= min(b - a, d - c)
    plain = rag.context(eo, "news", question, budget=300, diversity=0.0)
    assert [p.score for p in plain.passages] == sorted((p.score for p in plain.passages),
                                                       reverse=True)


def test_context_refuses_bad_input(eo: Embedops) -> None:
    with pytest.raises(InvalidInput, match="below one passage"):
        rag.context(eo, "news", "bushfire near Sydney", budget=1)
    with pytest.raises(InvalidInput, match="query is empty"):
        rag.context(eo, "news", "  ")
    with pytest.raises(NotFound):
        rag.context(eo, "nope", "bushfire")
    with pytest.raises(InvalidInput, match="no such file"):
        rag.ingest_files(eo, "news", ["/no/such/file.txt"])


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["--quiet", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_cli_ingest_and_context(eo: Embedops, built: tuple[Workspace, Path], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    eo.close()
    extra = tmp_path / "extra.txt"
    extra.write_text("Bushfires burn near Sydney. Crews fight the flames all night.",
                     encoding="utf-8")
    code, out = _cli(capsys, "rag-ingest", "news", str(extra), "--chunk-tokens", "50",
                     "--json")
    assert code == 0, out
    assert json.loads(out)["chunks"] == 1
    code, out = _cli(capsys, "rag-context", "news", "crews fight flames", "--budget", "200",
                     "--json")
    body = json.loads(out)
    assert code == 0 and body["tokens_used"] <= 200 and body["passages"][0]["citation"]
    code, out = _cli(capsys, "rag-context", "news", "crews", "--budget", "2")
    assert code != 0 and "below one passage" in out and "Traceback" not in out


def test_http_documents_and_context(eo: Embedops) -> None:
    from fastapi.testclient import TestClient

    from embedops.serve.app import create_app
    from embedops.serve.keys import KeyStore
    from embedops.serve.settings import ServeSettings

    keys = KeyStore(eo.workspace)
    read = {"X-API-Key": keys.create("read")[0]}
    write = {"X-API-Key": keys.create("write")[0]}
    app = create_app(ServeSettings(home=str(eo.workspace.home), warmup=False), api=eo)
    doc = {"documents": [{"id": "memo", "text": "The dam is full. Water flows over it."}],
           "chunk_tokens": 40, "overlap": 0}
    with TestClient(app) as client:
        path = "/v1/collections/news/documents"
        assert client.post(path, json=doc, headers=read).status_code == 403
        made = client.post(path, json=doc, headers=write)
        assert made.status_code == 200 and made.json()["chunks"] == 1
        got = client.post("/v1/collections/news/context",
                          json={"query": "water flows over the dam", "budget": 200},
                          headers=read)
        assert got.status_code == 200
        body = got.json()
        assert body["tokens_used"] <= 200 and body["passages"][0]["parent_id"]
        small = client.post("/v1/collections/news/context",
                            json={"query": "dam", "budget": 2}, headers=read)
        assert small.status_code == 422 and "below one passage" in small.text
        empty = client.post("/v1/collections/news/context", json={"query": " "},
                            headers=read)
        assert empty.status_code == 422 and "query is empty" in empty.text
        ghost = client.post("/v1/collections/ghost/context", json={"query": "dam"},
                            headers=read)
        assert ghost.status_code == 404


def test_chunks_count_a_transformers_wordpieces(tmp_path: Path) -> None:
    from gensim.test.utils import datapath

    text = " ".join(_lee(Path(datapath("lee_background.cor")))[:3])
    with Embedops(home=tmp_path / "ws") as eo:
        eo.models.import_transformer("minilm")
        count = rag.token_counter(eo, "minilm")
        spans = rag.chunk_spans(text, count, chunk_tokens=64, overlap=16)
        assert len(spans) > 3
        pieces = eo.models.count_tokens([text[a:b] for a, b, _ in spans], "minilm").tokens
        # [CLS] and [SEP] are the model's, not the chunk's.
        assert all(n - 2 <= 64 for n in pieces)
        assert all(t <= 64 for _, _, t in spans)
        # Wordpieces, not words: punctuation and rare words are pieces of their own.
        assert sum(t for _, _, t in spans) > sum(len(text[a:b].split()) for a, b, _ in spans)
