"""Fine-tuning input: JSONL validated line by line; configs and the CLI refuse bad values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedops.cli.main import main
from embedops.errors import FormatError, InvalidInput
from embedops.train.finetune import FinetuneConfig, Pair, _batches, read_pairs


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_pairs_accepts_pairs_and_triplets(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            json.dumps({"anchor": "a small dog", "positive": "puppy"}),
            "",
            json.dumps({"anchor": "feline", "positive": "cat", "negative": "dog"}),
        ],
    )
    assert read_pairs(path) == [Pair("a small dog", "puppy"), Pair("feline", "cat", "dog")]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2 is not valid JSON"),
        ("[1, 2]", "line 2 is not a JSON object"),
        ('{"anchor": "x"}', "line 2 has no 'positive'"),
        ('{"anchor": "", "positive": "y"}', "line 2: 'anchor' must be a non-empty string"),
        ('{"anchor": "  ", "positive": "y"}', "line 2: 'anchor' must be a non-empty string"),
        ('{"anchor": null, "positive": "y"}', "line 2: 'anchor' must be a non-empty string"),
        ('{"anchor": "x", "positive": 3}', "line 2: 'positive' must be a non-empty string"),
        ('{"anchor": "x", "positive": "y", "negative": null}', "'negative' must be a non-empty"),
        ('{"anchor": "x", "positive": "y", "label": 1}', "line 2 has unknown keys"),
    ],
)
def test_bad_lines_are_refused_with_their_number(tmp_path: Path, line: str, message: str) -> None:
    path = _write(tmp_path, [json.dumps({"anchor": "a", "positive": "b"}), line])
    with pytest.raises(FormatError, match=message):
        read_pairs(path)


def test_empty_or_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="has no pairs"):
        read_pairs(_write(tmp_path, ["", "  "]))
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"anchor": "caf\xe9", "positive": "x"}\n')
    with pytest.raises(FormatError, match="cannot read"):
        read_pairs(bad)
    with pytest.raises(FormatError, match="cannot read"):
        read_pairs(tmp_path / "missing.jsonl")


@pytest.mark.parametrize(
    "fields",
    [
        {"epochs": 0},
        {"batch_size": 1},
        {"batch_size": "8"},
        {"learning_rate": 0},
        {"learning_rate": 5.0},
        {"warmup_ratio": 1.0},
        {"epochs": True},
    ],
)
def test_bad_config_is_refused(fields) -> None:
    with pytest.raises(InvalidInput):
        FinetuneConfig(**fields)


def test_config_round_trips() -> None:
    cfg = FinetuneConfig(epochs=2, hard_negatives=True)
    assert FinetuneConfig(**json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_batches_never_repeat_a_positive() -> None:
    import random

    pairs = [Pair(f"q{i}", f"p{i % 7}") for i in range(50)]
    batches = _batches(pairs, 8, random.Random(0))
    assert all(len({p.positive for p in b}) == len(b) for b in batches)
    assert sum(len(b) for b in batches) >= 40


def test_cli_refuses_bad_input(workspace, tmp_path: Path, capsys) -> None:
    pairs = _write(tmp_path, ['{"anchor": "a", "positive": "b"}', '{"anchor": 1}'])
    assert main(["finetune", "nomodel", str(tmp_path / "nope.jsonl"), "--name", "x"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["finetune", "nomodel", str(pairs), "--name", "x", "--epochs", "0"]) == 1
    assert "--epochs must be a positive integer" in capsys.readouterr().err
    assert main(["finetune", "nomodel", str(pairs), "--name", "x"]) == 1
    assert "line 2: 'anchor' must be a non-empty string" in capsys.readouterr().err
    good = _write(tmp_path, ['{"anchor": "a", "positive": "b"}'])
    assert main(["finetune", "nomodel", str(good), "--name", "x"]) == 1
    assert "no model named 'nomodel'" in capsys.readouterr().err
    assert main(["distill", "nomodel", "--name", "x", "--dim", "-1"]) == 1
    assert "--dim must be >= 0" in capsys.readouterr().err
    assert main(["distill", "nomodel", "--name", "x", "--corpus", str(tmp_path / "no.txt")]) == 1
    assert "corpus" in capsys.readouterr().err
    assert main(["distill", "bad name!", "--name", "x"]) == 1
    assert "invalid model name" in capsys.readouterr().err
