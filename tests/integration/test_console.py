"""The web console at /ui on a real uvicorn server: sign-in, session cookie, CSRF and roles
over plain HTTP, bad inputs shown as escaped errors, and the pages driven in headless
Chromium (Debian's package, through Playwright) with a screenshot of each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_helpers import (
    artifacts_dir,
    browser_or_skip,
    build_workspace,
    csrf_of,
    signed_in,
)
from serve_helpers import running_server

from embedops.serve.app import create_app
from embedops.serve.keys import KeyStore
from embedops.serve.settings import ServeSettings

# One worker builds the workspace and runs every test of this module (make test: --dist
# loadgroup); two workers would each build it and contend for the same two cores.
pytestmark = pytest.mark.xdist_group("console")

SCRIPT = "<script>window.__pwned=1;alert(1)</script>"
ESCAPED = "&lt;script&gt;window.__pwned=1;alert(1)&lt;/script&gt;"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ws, keys = build_workspace(tmp_path_factory.mktemp("console"))
    app = create_app(ServeSettings(home=str(ws.home)))
    with running_server(app) as base:
        yield {"base": base, "keys": keys, "ws": ws}


def test_login_opens_a_session_in_an_httponly_strict_cookie(console: dict[str, Any]) -> None:
    import httpx

    base, keys = console["base"], console["keys"]
    with httpx.Client(base_url=base, timeout=60) as anon:
        first = anon.get("/ui/overview")
        assert first.status_code == 303
        assert first.headers["location"].startswith("/ui/login?next=")
        form = anon.get("/ui/login")
        wrong = anon.post("/ui/login", data={"csrf": csrf_of(form.text), "key": "eok_nope"})
        assert wrong.status_code == 401 and "malformed" in wrong.text
        assert "embedops_console=" not in wrong.headers.get("set-cookie", "")
        stale = anon.post("/ui/login", data={"csrf": "forged", "key": keys["read"]})
        assert stale.status_code == 403
    with signed_in(base, keys["read"]) as reader:
        cookie = next(c for c in reader.cookies.jar if c.name == "embedops_console")
        assert cookie.path == "/ui" and not cookie.secure
        assert cookie.has_nonstandard_attr("HttpOnly")
        assert cookie.get_nonstandard_attr("SameSite").lower() == "strict"
        assert keys["read"] not in (cookie.value or "")
        assert keys["read"].split("_")[1] not in (cookie.value or "")
        page = reader.get("/ui/overview")
        assert page.status_code == 200 and 'data-collection="canary"' in page.text
        assert "Content-Security-Policy" in page.headers
        assert reader.post("/ui/logout").status_code == 403  # no CSRF token
        out = reader.post("/ui/logout", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 303
        assert reader.get("/ui/overview").status_code == 303



def test_the_session_cookie_is_secure_over_tls(console: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    app = create_app(ServeSettings(home=str(console["ws"].home), warmup=False))
    with TestClient(app, base_url="https://console.test") as client:
        form = client.get("/ui/login")
        resp = client.post("/ui/login", follow_redirects=False, data={
            "csrf": csrf_of(form.text), "key": console["keys"]["read"]})
        assert resp.status_code == 303
        cookie = resp.headers["set-cookie"]
        assert "embedops_console=" in cookie and "; Secure" in cookie and "HttpOnly" in cookie

def test_a_revoked_key_ends_its_session(console: dict[str, Any]) -> None:
    store = KeyStore(console["ws"])
    key, info = store.create("read", "soon-revoked")
    with signed_in(console["base"], key) as reader:
        assert reader.get("/ui/overview").status_code == 200
        store.revoke(info.id)
        assert reader.get("/ui/overview").status_code == 303


def test_read_key_sees_but_cannot_act(console: dict[str, Any]) -> None:
    with signed_in(console["base"], console["keys"]["read"]) as reader:
        page = reader.get("/ui/rollouts", params={"collection": "canary"})
        assert page.status_code == 200 and 'id="phase">canary<' in page.text
        assert "action-promote" not in page.text and "action-rollback" not in page.text
        token = csrf_of(page.text)
        for action in ("promote", "rollback", "abort"):
            resp = reader.post(f"/ui/rollouts/canary/{action}", data={"csrf": token})
            assert resp.status_code == 403 and "needs &#39;admin&#39;" in resp.text
        assert reader.get("/ui/rollouts/canary/confirm?action=rollback").status_code == 403
        golden = reader.post("/ui/golden/add", data={"csrf": token, "collection": "docs",
                                                     "set": "faq", "q": "x", "id": "doc1"})
        assert golden.status_code == 403
        assert 'id="phase">canary<' in reader.get("/ui/rollouts?collection=canary").text


def test_forms_need_this_sessions_token_and_origin(console: dict[str, Any]) -> None:
    base, keys = console["base"], console["keys"]
    with signed_in(base, keys["admin"]) as admin, signed_in(base, keys["write"]) as writer:
        admin_token = csrf_of(admin.get("/ui/rollouts").text)
        writer_token = csrf_of(writer.get("/ui/search").text)
        assert admin_token != writer_token
        for data, headers in (({}, {}), ({"csrf": writer_token}, {}),
                              ({"csrf": admin_token}, {"Origin": "https://evil.example"})):
            resp = admin.post("/ui/rollouts/canary/abort", data=data, headers=headers)
            assert resp.status_code == 403
        added = writer.post("/ui/golden/add", data={
            "csrf": writer_token, "collection": "docs", "set": "", "new_set": "console-set",
            "q": "bushfire near sydney", "id": "doc0"}, headers={"HX-Request": "true"})
        assert added.status_code == 200 and "golden set &#39;console-set&#39;" in added.text
        assert 'id="phase">canary<' in admin.get("/ui/rollouts?collection=canary").text


@pytest.mark.parametrize("path, params, expected", [
    ("/ui/search", {"collection": "docs", "q": "  "}, "query is empty"),
    ("/ui/search", {"collection": "docs", "q": "fire", "k": "5000"},
     "k=5000 is over the limit of 1000"),
    ("/ui/search", {"collection": "nope", "q": "fire"}, "no collection named &#39;nope&#39;"),
    ("/ui/search", {"collection": SCRIPT, "q": SCRIPT}, ESCAPED),
    ("/ui/search", {"collection": "docs", "q": "fire", "k": "ten"}, "k must be a whole number"),
    ("/ui/search", {"collection": "docs", "q": "fire", "filters": "lang"}, "cannot read filter"),
    ("/ui/projection", {"collection": "docs", "n": "999999"}, "over the limit of 5000"),
    ("/ui/projection", {"collection": "docs", "window": "yesterday"}, "cannot read the time"),
    ("/ui/projection", {"collection": "docs", "window": SCRIPT}, "the limit is 40"),
    ("/ui/words", {"op": "neighbours", "model": "lee@1", "word": SCRIPT}, ESCAPED),
    ("/ui/quality", {"set": "nope"}, "no golden set named &#39;nope&#39;"),
    ("/ui/drift", {"collection": SCRIPT}, ESCAPED),
    ("/ui/models", {"show": "nope@7"}, "nope"),
])
def test_bad_inputs_give_visible_escaped_errors(console: dict[str, Any], path: str,
                                                params: dict[str, str], expected: str) -> None:
    with signed_in(console["base"], console["keys"]["read"]) as reader:
        resp = reader.get(path, params=params)
    assert resp.status_code == 200, resp.text
    assert 'class="error" role="alert"' in resp.text and expected in resp.text
    assert SCRIPT not in resp.text and "Traceback" not in resp.text


PAGES = {
    "overview": "/ui/overview",
    "words": "/ui/words?op=neighbours&model=lee%401&word=fire",
    "drift": "/ui/drift?collection=docs",
}


def _sign_in(page: Any, base: str, key: str) -> None:
    page.goto(f"{base}/ui/overview")
    page.fill("#key", key)
    page.click("#sign-in")
    page.wait_for_url("**/ui/overview")


def _browser(pw: Any) -> Any:
    return pw.chromium.launch(executable_path="/usr/bin/chromium")


def test_browser_read_key_tour(console: dict[str, Any],
                               tmp_path_factory: pytest.TempPathFactory) -> None:
    sync = browser_or_skip()
    shots = artifacts_dir(tmp_path_factory)
    base = console["base"]
    with sync.sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        _sign_in(page, base, console["keys"]["read"])
        _search_every_mode(page, base, shots)
        _projection(page, base, shots)
        _quality(page, base, shots)
        _models(page, base, shots)
        for name, path in PAGES.items():
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        assert page.locator("#drift-charts .js-plotly-plot").count() >= 4
        _read_cannot_promote(page, base, shots)
        page.goto(f"{base}/ui/search?collection=nope&q=" + SCRIPT.replace(";", "%3B"))
        assert "no collection named" in page.locator(".error").inner_text()
        assert page.evaluate("window.__pwned") is None and dialogs == []
        browser.close()
    print(f"console screenshots: {shots}")


def _search_every_mode(page: Any, base: str, shots: Path) -> None:
    page.goto(f"{base}/ui/search")
    page.fill("#q", "bushfire near sydney")
    page.fill("#k", "5")
    page.click("#run-search")
    page.wait_for_selector('.mode[data-mode="two_stage"] .hit')
    for mode in ("dense", "lexical", "hybrid", "two_stage"):
        column = page.locator(f'.mode[data-mode="{mode}"]')
        assert column.locator(".hit").count() == 5, mode
        assert "ms" in column.locator(".latency").inner_text()
    why = page.locator('.mode[data-mode="hybrid"] .hit .why').first.inner_text()
    assert "fused #1" in why and "BM25" in why and "dense" in why
    page.screenshot(path=str(shots / "search.png"), full_page=True)


def _projection(page: Any, base: str, shots: Path) -> None:
    page.goto(f"{base}/ui/projection?collection=docs&color=half")
    page.wait_for_selector("#projection-plot[data-ready]")
    assert page.locator("#projection-plot .scatterlayer .point").count() == 120
    assert page.locator("#projection-plot .legendtext").count() == 2
    page.screenshot(path=str(shots / "projection.png"), full_page=True)


def _quality(page: Any, base: str, shots: Path) -> None:
    page.goto(f"{base}/ui/quality?set=faq")
    page.wait_for_selector("#golden-1[data-ready]")
    charts = page.locator("#golden-charts .js-plotly-plot")
    assert charts.count() >= 3
    assert page.locator("#golden-charts .scatterlayer .trace").count() >= 3
    page.click("#run-layers")
    page.wait_for_selector("#layer-losses")
    assert "ann" in page.locator("#layer-losses").inner_text()
    page.screenshot(path=str(shots / "quality.png"), full_page=True)


def _models(page: Any, base: str, shots: Path) -> None:
    page.goto(f"{base}/ui/models?show=lee%402")
    assert "lee@2" in page.locator("#lineage").inner_text()
    assert '"parent": "lee@1"' in page.locator("#manifest").inner_text()
    page.select_option("select[name=a]", "lee@1")
    page.select_option("select[name=b]", "lee@2")
    page.fill("input[name=n]", "60")
    page.click("#run-compare")
    page.wait_for_selector("#comparison-table")
    assert "kNN overlap" in page.locator("#comparison-table").inner_text()
    page.screenshot(path=str(shots / "models.png"), full_page=True)


def _read_cannot_promote(page: Any, base: str, shots: Path) -> None:
    page.goto(f"{base}/ui/rollouts?collection=canary")
    assert page.locator("#phase").inner_text() == "canary"
    assert page.locator("#action-promote").count() == 0
    assert page.locator("#read-only").is_visible()
    page.screenshot(path=str(shots / "rollouts-read.png"), full_page=True)
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    resp = page.request.post(f"{base}/ui/rollouts/canary/promote", form={"csrf": token},
                             headers={"Origin": base})
    assert resp.status == 403


def test_browser_admin_rolls_back_the_canary(console: dict[str, Any],
                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    sync = browser_or_skip()
    shots = artifacts_dir(tmp_path_factory)
    base = console["base"]
    with sync.sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        _sign_in(page, base, console["keys"]["admin"])
        page.goto(f"{base}/ui/rollouts?collection=canary")
        assert page.locator("#phase").inner_text() == "canary"
        page.click("#action-rollback")
        page.wait_for_selector("#confirm")
        page.fill("input[name=reason]", "seen from the console <b>test</b>")
        page.screenshot(path=str(shots / "rollouts-confirm.png"), full_page=True)
        page.click("#confirm-action")
        page.wait_for_url("**done=rollback")
        assert page.locator("#phase").inner_text() == "rolled_back"
        assert "seen from the console <b>test</b>" in page.locator("#rollout").inner_text()
        page.screenshot(path=str(shots / "rollouts.png"), full_page=True)
        browser.close()


def test_explain_hybrid_matches_the_hybrid_ranking(console: dict[str, Any]) -> None:
    from embedops.engine import Embedops

    with Embedops(console["ws"]) as api:
        for weight in (0.0, 0.3, 1.0):
            hits = api.search("docs", "bushfire near sydney", k=10, mode="hybrid",
                              hybrid_weight=weight).hits
            why = api.explain_hybrid("docs", "bushfire near sydney", 10, hybrid_weight=weight)
            assert [why[h.id]["fused_rank"] for h in hits] == list(range(1, len(hits) + 1))
            for hit in hits:
                assert why[hit.id]["fused_score"] == pytest.approx(hit.score)
            lexical = api.search("docs", "bushfire near sydney", k=3, mode="lexical").hits
            if weight < 1:
                assert why[lexical[0].id]["lexical_rank"] == 1
                assert why[lexical[0].id]["lexical_score"] == pytest.approx(lexical[0].score)


def test_projection_parts() -> None:
    import numpy as np

    from embedops.serve.console import projection
    from embedops.serve.console.figures import quantile

    x = np.random.default_rng(0).normal(size=(500, 16)).astype(np.float32)
    x[:, 3] *= 6
    coords, fitted = projection.pca(x)
    assert coords.shape == (500, 2) and fitted.explained[0] > 0.5
    assert np.allclose(fitted.apply(x), coords, atol=1e-4)
    assert projection.sample([str(i) for i in range(10)], 20) == [str(i) for i in range(10)]
    ids = [str(i) for i in range(100_000)]
    assert len(projection.sample(ids, projection.MAX_POINTS)) == projection.MAX_POINTS
    meta = [{"tag": f"t{i % 30}", "n": i} for i in range(500)]
    texts = ["<b>" + "x" * 500] * 500
    traces = projection.traces(coords, [str(i) for i in range(500)], texts, meta, "tag")
    assert len(traces) == projection.MAX_CATEGORIES + 1 and traces[-1]["name"] == "tag=other"
    assert all("<b>" not in t for tr in traces for t in tr["text"])
    assert max(len(t) for tr in traces for t in tr["text"]) < 2 * projection.HOVER_CHARS
    numeric = projection.traces(coords, [str(i) for i in range(500)], texts, meta, "n")
    assert len(numeric) == 1 and numeric[0]["color"][:3] == [0, 1, 2]
    assert quantile({0.1: 50.0, 0.2: 99.0, float("inf"): 100.0}, 0.99) == pytest.approx(0.2)
    assert quantile({0.1: 0.0, float("inf"): 0.0}, 0.99) is None
