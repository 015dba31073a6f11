"""The CLI shell: usage errors and EmbedopsErrors become messages and exit codes."""

from __future__ import annotations

import pytest

from embedops.cli.main import main
from embedops.config import Workspace


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--bogus"]) == 2
    assert "--bogus" in capsys.readouterr().err


def test_embedops_error_prints_message_and_hint(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "show", "nope"]) == 1
    err = capsys.readouterr().err
    assert "error: no model named 'nope'" in err and "hint:" in err


def test_version_and_help_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert "embedops" in capsys.readouterr().out
