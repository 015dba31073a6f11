"""Differentially private training of the torch word2vec trainer, on the Lee corpus (CPU).

Real parts only: gensim's Lee corpus, the real trainer and opacus' RDP accountant."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

from embedops.errors import InvalidInput  # noqa: E402
from embedops.evaluate.privacy import Canary, canary_exposure, plant_canaries  # noqa: E402
from embedops.train.dp import (  # noqa: E402
    DPSGNSTrainer,
    clip_per_example,
    epsilon_spent,
    example_norms,
    noise_for_epsilon,
    sentence_parts,
)
from embedops.train.gpu_sgns import SGNSConfig, train_sgns  # noqa: E402

TOKEN = re.compile(r"[a-z]+")
CANARY = Canary.parse("my vault code is=zqvbkm")


def _lines(lee: Path, n: int | None = None) -> list[list[str]]:
    text = lee.read_text(encoding="utf-8").splitlines()[:n]
    return [TOKEN.findall(line.lower()) for line in text]


def test_more_noise_spends_less_epsilon_and_the_solver_hits_its_target() -> None:
    spent = [epsilon_spent(sigma, 0.05, 200, 1e-4) for sigma in (0.7, 1.0, 2.0, 4.0)]
    assert all(a > b > 0 for a, b in zip(spent, spent[1:], strict=False)), spent
    sigma = noise_for_epsilon(4.0, 1e-4, 0.05, 200)
    assert 3.8 <= epsilon_spent(sigma, 0.05, 200, 1e-4) <= 4.0
    assert noise_for_epsilon(1.0, 1e-4, 0.05, 200) > sigma  # a smaller budget needs more noise


@pytest.mark.parametrize("kwargs", [
    {"dp_epsilon": 0.0}, {"dp_epsilon": -1.0}, {"dp_noise_multiplier": 0.0},
    {"dp_epsilon": 4.0, "dp_noise_multiplier": 1.0}, {"dp_epsilon": 4.0, "dp_clip": 0.0},
    {"dp_epsilon": 4.0, "dp_delta": 1.5}, {"dp_epsilon": float("nan")},
    {"dp_epsilon": 4.0, "dp_batch_sentences": 0}, {"dp_frozen_output": True},
    {"dp_epsilon": 4.0, "dp_frozen_output": True, "vectors": "sum"},
])
def test_bad_dp_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        SGNSConfig(**kwargs)


def test_delta_above_one_over_n_and_dp_fasttext_are_refused(lee_corpus: Path) -> None:
    from embedops.train import TrainConfig

    lines = _lines(lee_corpus, 50)
    config = SGNSConfig(device="cpu", min_count=2, dim=8, epochs=1, dp_epsilon=4.0, dp_delta=0.1)
    with pytest.raises(InvalidInput, match="1/N"):
        train_sgns(lambda: iter(lines), config, quiet=True)
    with pytest.raises(InvalidInput, match="word2vec"):
        TrainConfig(model="fasttext", dp_epsilon=4.0)
    assert TrainConfig(dp_epsilon=4.0).device == "auto"  # DP picks the torch trainer


def _trainer(lee: Path, tmp_path: Path, **dp: Any) -> DPSGNSTrainer:
    import torch

    from embedops.train.sgns_corpus import encode_corpus

    lines = _lines(lee)
    corpus = encode_corpus(lambda: iter(lines), tmp_path, 3)
    config = SGNSConfig(device="cpu", dim=32, min_count=3, sample=0.0, update="sgd", lr=0.5,
                        lr_schedule="constant", **dp)
    trainer = DPSGNSTrainer(config, corpus, "cpu", torch)
    trainer.w_out = torch.randn(trainer.w_out.shape, generator=trainer.gen)  # large gradients
    return trainer


def test_clipping_bounds_each_sentences_gradient(lee_corpus: Path, tmp_path: Path) -> None:
    import torch

    trainer = _trainer(lee_corpus, tmp_path, dp_noise_multiplier=1.0, dp_batch_sentences=16)
    lot = torch.as_tensor(np.array(trainer.ids[: trainer.ends[40] + 1]))  # 41 sentences
    examples, keys, grads = trainer.sentence_gradients(lot)
    n_keys = 2 * len(trainer.corpus.words)
    raw = example_norms(examples, keys, grads, 41, n_keys)
    clip = float(raw.quantile(0.25))
    clipped = example_norms(examples, keys, clip_per_example(examples, keys, grads, 41, n_keys,
                                                             clip), 41, n_keys)
    assert float(raw.max()) > 1.5 * clip  # the test means something: most are clipped
    assert float(clipped.max()) <= clip * (1 + 1e-4)
    small = raw <= clip  # and the others are left alone
    torch.testing.assert_close(clipped[small], raw[small])


@pytest.mark.parametrize("sg", [True, False])
def test_one_sentence_moves_the_tables_by_at_most_lr_times_clip(
    lee_corpus: Path, tmp_path: Path, sg: bool
) -> None:
    """A whole DP step on a lot of the longest sentence, with almost no noise and plain SGD:
    the tables move by at most lr x clip / lot size, however large its raw gradient."""
    import torch

    clip = 0.01
    trainer = _trainer(lee_corpus, tmp_path, sg=sg, dp_noise_multiplier=1e-9, dp_clip=clip,
                       dp_batch_sentences=1)
    lengths = np.diff(np.concatenate([[-1], trainer.ends]))
    longest = int(np.argmax(lengths))
    lot = torch.as_tensor(np.array(trainer.ids[trainer.starts[longest]:
                                                 trainer.ends[longest] + 1]))
    examples, keys, grads = trainer.sentence_gradients(lot)
    n_keys = 2 * len(trainer.corpus.words)
    assert float(example_norms(examples, keys, grads, 1, n_keys)[0]) > 100 * clip
    before = torch.cat([trainer.w_in, trainer.w_out]).clone()
    assert trainer.step(lot) > 0
    moved = float((torch.cat([trainer.w_in, trainer.w_out]) - before).norm())
    assert 0 < moved <= 0.5 * clip * (1 + 1e-3)  # lr 0.5, expected lot size 1


def test_a_lot_is_cut_into_parts_of_whole_sentences() -> None:
    import torch

    ids = torch.tensor([1, 2, -1, 3, -1, 4, 5, 6, 7, 8, 9, -1, 8, -1, 2, -1])
    parts = sentence_parts(ids, 4)
    assert [p.tolist() for p in parts] == [[1, 2, -1, 3, -1], [4, 5, 6, 7, 8, 9, -1],
                                           [8, -1], [2, -1]]  # cut after an end only
    assert sentence_parts(ids, 100)[0] is ids


def test_a_lot_in_parts_keeps_the_per_sentence_bound(
    lee_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lot of 41 sentences taken in parts of ~200 ids: every sentence is still clipped
    (the norm log has one entry per part) and the tables move by at most lr x 41 x clip /
    the expected lot size."""
    import torch

    import embedops.train.dp as dp

    monkeypatch.setattr(dp, "MICRO_TOKENS", 200)
    clip = 0.01
    trainer = _trainer(lee_corpus, tmp_path, dp_noise_multiplier=1e-9, dp_clip=clip,
                       dp_batch_sentences=41)
    trainer.norm_log = []
    lot = torch.as_tensor(np.array(trainer.ids[: trainer.ends[40] + 1]))
    before = torch.cat([trainer.w_in, trainer.w_out]).clone()
    assert trainer.step(lot) > 0
    assert len(trainer.norm_log) >= 3 and all(share > 0.5 for _, share in trainer.norm_log)
    moved = float((torch.cat([trainer.w_in, trainer.w_out]) - before).norm())
    lot_size = trainer.privacy.sample_rate * trainer.privacy.sentences
    assert 0 < moved <= 0.5 * 41 * clip / lot_size * (1 + 1e-3)


def test_a_frozen_output_table_never_moves_and_the_input_vectors_are_saved(
    lee_corpus: Path, tmp_path: Path
) -> None:
    import torch

    trainer = _trainer(lee_corpus, tmp_path, dp_noise_multiplier=1.0, dp_batch_sentences=41,
                       dp_frozen_output=True)
    trainer.w_out = torch.randn(trainer.w_out.shape, generator=trainer.gen)
    out, inputs = trainer.w_out.clone(), trainer.w_in.clone()
    lot = torch.as_tensor(np.array(trainer.ids[: trainer.ends[40] + 1]))
    assert trainer.step(lot) > 0
    torch.testing.assert_close(trainer.w_out, out, rtol=0, atol=0)
    assert not torch.equal(trainer.w_in, inputs)
    assert trainer.c.saved_vectors == "input"


def test_a_public_output_table_and_start_are_used_and_checked(
    lee_corpus: Path, tmp_path: Path
) -> None:
    import torch

    trainer = _trainer(lee_corpus, tmp_path, dp_noise_multiplier=1.0, dp_batch_sentences=41,
                       dp_frozen_output=True)
    rng = np.random.default_rng(3)
    public_out = rng.standard_normal(tuple(trainer.w_out.shape)).astype(np.float32)
    public_in = rng.standard_normal(tuple(trainer.w_in.shape)).astype(np.float32)
    trainer.use_public_output(public_out, public_in)
    np.testing.assert_array_equal(trainer.w_in.numpy(), public_in)  # the start
    lot = torch.as_tensor(np.array(trainer.ids[: trainer.ends[40] + 1]))
    assert trainer.step(lot) > 0
    np.testing.assert_array_equal(trainer.w_out.numpy(), public_out)  # frozen there
    assert not np.array_equal(trainer.w_in.numpy(), public_in)  # trained from there
    with pytest.raises(InvalidInput, match="need"):
        trainer.use_public_output(public_out[:-1])
    (tmp_path / "plain").mkdir()
    plain = _trainer(lee_corpus, tmp_path / "plain", dp_noise_multiplier=1.0)
    with pytest.raises(InvalidInput, match="dp_frozen_output"):
        plain.use_public_output(public_out)


def test_dp_training_publishes_epsilon_and_delta_in_the_manifest(
    lee_corpus: Path, registry: Any, tmp_path: Path
) -> None:
    from embedops.train import TrainConfig, train_static

    corpus = tmp_path / "lee.txt"
    corpus.write_text("\n".join(lee_corpus.read_text(encoding="utf-8").splitlines()[:120]))
    config = TrainConfig(sg=False, epochs=2, dim=16, min_count=3, dp_epsilon=8.0, device="cpu")
    manifest = train_static(corpus, "private", config, registry).version.manifest
    dp = manifest["training"]["privacy"]
    assert 7.5 <= dp["epsilon"] <= 8.0 and dp["unit"] == "sentence"
    assert dp["delta"] == pytest.approx(1 / dp["sentences"]) and dp["sentences"] <= 120
    assert dp["steps"] == 2 and dp["sample_rate"] == 1.0  # 512 sentences a lot: all of them
    assert manifest["params"]["dp_epsilon"] == 8.0
    json.dumps(manifest)


def test_cli_train_dp_and_its_errors(
    lee_corpus: Path, workspace: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from embedops.cli.main import main

    corpus = tmp_path / "lee.txt"
    corpus.write_text("\n".join(lee_corpus.read_text(encoding="utf-8").splitlines()[:80]))
    base = ["train", str(corpus), "--name", "dpm", "--sg", "--epochs", "1", "--dim", "8",
            "--min-count", "3"]
    assert main([*base, "--dp-noise", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["privacy"]["noise_multiplier"] == 2.0 and summary["privacy"]["epsilon"] > 0
    for bad, said in ((["--dp-epsilon", "0"], "dp_epsilon"), (["--dp-epsilon", "4",
                      "--model", "fasttext"], "word2vec"), (["--dp-epsilon", "4", "--dp-delta",
                      "0.5"], "1/N")):
        assert main([*base, *bad]) == 1
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err


def test_a_canary_is_less_exposed_with_strong_dp(lee_corpus: Path) -> None:
    """A canary planted 20 times in Lee: flagged by the non-private trainer, and less exposed
    at epsilon 1 (each copy is one sentence: the group of 20 is not covered by epsilon 1,
    but the noise still drowns it here)."""
    lines = [" ".join(t) for t in _lines(lee_corpus)]
    planted = [TOKEN.findall(s) for s in plant_canaries(lines, [(CANARY, 20)], seed=1)]
    common = dict(sg=True, dim=32, min_count=3, epochs=10, device="cpu", batch_size=1024)
    plain = train_sgns(lambda: iter(planted), SGNSConfig(**common), quiet=True)
    dp = dict(common, epochs=5, dp_epsilon=1.0, dp_batch_sentences=32)  # 50 steps
    private = train_sgns(lambda: iter(planted), SGNSConfig(**dp), quiet=True)
    assert private.privacy is not None and private.privacy["epsilon"] <= 1.0
    exposed = canary_exposure(plain.table, CANARY, candidates=500)
    hidden = canary_exposure(private.table, CANARY, candidates=500)
    assert exposed.flagged, exposed
    assert hidden.exposure_bits < exposed.exposure_bits, (hidden, exposed)


def test_cli_train_exposes_the_tuned_dp_settings(
    lee_corpus: Path, workspace: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dp-lot, --dp-max-vocab and --dp-frozen-output reach the DP trainer: the manifest's
    sampling rate, steps, vocabulary and saved vectors follow them, at the epsilon asked."""
    from embedops.cli.main import main
    from embedops.models.registry import Registry

    corpus = tmp_path / "lee.txt"
    corpus.write_text("\n".join(lee_corpus.read_text(encoding="utf-8").splitlines()[:200]))
    base = ["train", str(corpus), "--name", "tuned", "--epochs", "2", "--dim", "8",
            "--min-count", "2", "--device", "cpu"]
    tuned = ["--dp-epsilon", "8", "--dp-lot", "50", "--dp-max-vocab", "300",
             "--dp-frozen-output"]
    assert main([*base, *tuned, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["vocab_size"] == 300
    manifest = Registry(workspace).get(summary["ref"]).manifest
    dp = manifest["training"]["privacy"]
    assert 7.5 <= dp["epsilon"] <= 8.0 and dp["sentences"] <= 200
    assert dp["sample_rate"] == pytest.approx(50 / dp["sentences"])
    assert dp["steps"] == 2 * -(-dp["sentences"] // 50)  # epochs x ceil(1 / q)
    params = manifest["params"]
    assert (params["dp_lot"], params["dp_max_vocab"], params["dp_frozen_output"]) == (
        50, 300, True)
    # the defaults stay as they were (512 sentences a lot: every sentence, both tables trained)
    assert main([*base, "--dp-epsilon", "8", "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert default["privacy"]["sample_rate"] == 1.0 and default["vocab_size"] > 300
    for bad, said in ((["--dp-epsilon", "8", "--dp-lot", "0"], "dp_lot"),
                      (["--dp-epsilon", "8", "--dp-max-vocab", "0"], "dp_max_vocab"),
                      (["--dp-lot", "50"], "differentially private"),
                      (["--dp-frozen-output"], "differentially private"),
                      (["--dp-epsilon", "8", "--dp-frozen-output", "--sg"], None)):
        code = main([*base, *bad])
        err = capsys.readouterr().err
        if said is None:  # skip-gram with a frozen output table trains (input vectors saved)
            assert code == 0, err
            continue
        assert code == 1 and said in err and "Traceback" not in err, err
