"""ServeSettings: frozen, round-trips through its constructor, refuses nonsense with a hint."""

from __future__ import annotations

import json

import pytest

from embedops.errors import InvalidInput
from embedops.serve.settings import ServeSettings


def test_round_trip_through_json() -> None:
    settings = ServeSettings(home="/tmp/x", port=0, auth=False, max_k=5, log_level="debug")
    again = ServeSettings(**json.loads(json.dumps(settings.to_dict())))
    assert again == settings
    assert settings.replace(port=9000).port == 9000
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_batch", 0, "max_batch must be >= 1"),
        ("max_k", -3, "max_k must be >= 1"),
        ("cache_size", -1, "cache_size must be >= 0"),
        ("port", 70000, "port must be in 0..65535"),
        ("log_level", "loud", "unknown log level 'loud'"),
        ("graceful_timeout_s", -1.0, "graceful_timeout_s must be >= 0"),
    ],
)
def test_bad_values_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as err:
        ServeSettings(**{field: value})
    assert err.value.http_status == 422
