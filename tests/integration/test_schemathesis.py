"""Property-based fuzzing of the whole OpenAPI schema against a real uvicorn: whatever the
input, the service answers with a 4xx in the error envelope, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from serve_helpers import lee_documents, publish_lee_model, running_server

from embedops.config import Workspace
from embedops.serve.app import create_app
from embedops.serve.keys import KeyStore
from embedops.serve.settings import ServeSettings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    ws = Workspace(tmp_path_factory.mktemp("fuzz") / "ws").ensure()
    publish_lee_model(ws)
    admin = KeyStore(ws).create("admin")[0]
    settings = ServeSettings(home=str(ws.home), max_batch=16, max_text_chars=500, max_k=50)
    with running_server(create_app(settings)) as base:
        headers = {"X-API-Key": admin}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
            assert c.post("/v1/collections", json={"name": "lee", "model": "lee"}).status_code \
                == 201
            c.post("/v1/collections/lee/items", json={"items": lee_documents(16)})
            c.post("/v1/collections/lee/index", json={"kind": "flat"})
        yield {"base": base, "headers": headers}


def _operations(base: str) -> list:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("generation", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gets_a_server_error(fuzz_target: dict, generation: GenerationMode) -> None:
    base, headers = fuzz_target["base"], fuzz_target["headers"]
    operations = _operations(base)
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=generation))
        @settings(max_examples=8, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            response = case.call_and_validate(
                base_url=base, headers=headers, checks=[not_a_server_error]
            )
            if response.status_code >= 400:
                body = response.json()
                assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])

        try:
            check()
        except Unsatisfiable:
            # No negative input exists for an operation without parameters or body.
            assert generation is GenerationMode.NEGATIVE
