"""The torch word2vec trainer, run on CPU (the CUDA path is the same code on another device)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from embedops.errors import CorpusError, InvalidInput  # noqa: E402
from embedops.train.gpu_sgns import SGNSConfig, resolve_device, train_sgns  # noqa: E402

TOKEN = re.compile(r"[a-z]+")


def _sentences(path: Path, lines: int = 120):
    """The first ``lines`` documents of the corpus (enough to exercise every code path)."""
    text = path.read_text(encoding="utf-8").splitlines()[:lines]
    return lambda: (TOKEN.findall(line.lower()) for line in text)


@pytest.mark.parametrize(
    "kwargs",
    [{"update": "adam"}, {"device": "tpu"}, {"dim": 0}, {"batch_size": 0}, {"chunk_tokens": 10}],
)
def test_bad_configs_are_refused(kwargs: dict) -> None:
    with pytest.raises(InvalidInput):
        SGNSConfig(**kwargs)


def test_config_round_trips() -> None:
    from dataclasses import asdict

    config = SGNSConfig(sg=False, batch_size=1024, lr=0.1)
    assert SGNSConfig(**asdict(config)) == config and not config.dp
    private = SGNSConfig(dp_epsilon=4.0, dp_clip=0.5, dp_delta=1e-6, dp_batch_sentences=64)
    assert SGNSConfig(**asdict(private)) == private and private.dp


def test_cuda_without_gpu_is_a_clear_error() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(InvalidInput, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto") == "cpu"


def test_corpus_without_frequent_words_is_refused() -> None:
    with pytest.raises(CorpusError, match="min_count"):
        train_sgns(lambda: iter([["a", "b"]]), SGNSConfig(min_count=5, device="cpu"), quiet=True)


@pytest.mark.parametrize("sg", [True, False])
def test_trains_and_is_seeded(lee_corpus: Path, sg: bool) -> None:
    config = SGNSConfig(
        sg=sg, epochs=2, dim=32, min_count=3, batch_size=2048, device="cpu", chunk_tokens=10_000
    )
    first = train_sgns(_sentences(lee_corpus), config, quiet=True)
    again = train_sgns(_sentences(lee_corpus), config, quiet=True)
    table = first.table
    assert table.vectors.shape == (len(table.index_to_key), 32)
    assert np.isfinite(table.vectors).all() and table.counts is not None
    np.testing.assert_array_equal(table.vectors, again.table.vectors)
    assert first.words == 2 * int(table.counts.sum())


def test_train_with_device_publishes_a_word2vec_version(
    lee_corpus: Path, registry, tmp_path: Path
) -> None:
    from embedops.models.static import StaticVectors
    from embedops.train import TrainConfig, train_static

    corpus = tmp_path / "lee.txt"
    corpus.write_text("\n".join(lee_corpus.read_text(encoding="utf-8").splitlines()[:120]))
    config = TrainConfig(device="cpu", epochs=1, dim=16, min_count=3, batch_size=2048)
    result = train_static(corpus, "gpu", config, registry)
    manifest = result.version.manifest
    assert manifest["kind"] == "word2vec" and manifest["params"]["device"] == "cpu"
    assert manifest["training"]["trainer"] == "torch-sgns"
    assert manifest["training"]["update"] == "adagrad"
    assert StaticVectors.read(result.version).dim == 16


def test_device_with_fasttext_is_refused() -> None:
    from embedops.train import TrainConfig

    with pytest.raises(InvalidInput, match="word2vec only"):
        TrainConfig(model="fasttext", device="cuda")
    with pytest.raises(InvalidInput, match="update"):
        TrainConfig(device="cpu", update="adam")


@pytest.mark.slow
def test_quality_close_to_gensim_on_the_same_small_corpus() -> None:
    """Skip-gram on 20k WordNet synsets (words + gloss, ~270k tokens), torch vs gensim:
    WS353 within 0.03 of gensim's (in practice above it: Adagrad helps rare words)."""
    import json
    import lzma

    from gensim.models import KeyedVectors, Word2Vec
    from gensim.test.utils import datapath

    from embedops.data import wordnet_glosses_path

    lines = []
    with lzma.open(wordnet_glosses_path(), "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if n >= 20_000:
                break
            synset = json.loads(line)
            text = " ".join(synset["lemmas"]) + " " + synset["gloss"]
            lines.append(TOKEN.findall(text.lower()))
    ours = train_sgns(lambda: iter(lines), SGNSConfig(device="cpu", min_count=3), quiet=True)
    kv = KeyedVectors(100)
    kv.add_vectors(ours.table.index_to_key, ours.table.vectors)
    anchor = Word2Vec(
        lines, vector_size=100, window=5, min_count=3, negative=5, epochs=5, sg=1, workers=1, seed=1
    )
    pairs = datapath("wordsim353.tsv")
    ws_ours = kv.evaluate_word_pairs(pairs)[1][0]
    ws_gensim = anchor.wv.evaluate_word_pairs(pairs)[1][0]
    assert ws_ours >= ws_gensim - 0.03, (ws_ours, ws_gensim)


@pytest.mark.parametrize(
    "kwargs",
    [{"lr_schedule": "cosine"}, {"accumulator": "column"}, {"apply_mode": "lazy"}, {"lr": 0.0}],
)
def test_bad_update_options_are_refused(kwargs: dict) -> None:
    with pytest.raises(InvalidInput):
        SGNSConfig(**kwargs)


@pytest.mark.parametrize("accumulator", ["row", "element"])
def test_dense_and_sparse_steps_are_the_same_update(lee_corpus: Path, accumulator: str) -> None:
    """Three steps on batches with repeated rows: the whole-table step and the batch-rows-only
    step move the same rows by the same amounts, and leave the same accumulators."""
    import tempfile

    import torch

    from embedops.train.gpu_sgns import _Trainer, encode_corpus

    with tempfile.TemporaryDirectory() as tmp:
        corpus = encode_corpus(_sentences(lee_corpus), Path(tmp), min_count=3)
        states = []
        for mode in ("dense", "sparse"):
            config = SGNSConfig(device="cpu", dim=8, accumulator=accumulator, apply_mode=mode)
            trainer = _Trainer(config, corpus, "cpu", torch)
            gen = torch.Generator().manual_seed(0)
            init = trainer.w_in.clone()
            for _ in range(3):
                rows = torch.randint(0, 40, (500,), generator=gen)  # many repeats
                grads = torch.randn(500, 8, generator=gen)
                trainer._apply(trainer.w_in, trainer.acc_in, rows, grads)
            assert not trainer.grad_buf.any() and not trainer.row_count.any()
            assert torch.equal(trainer.w_in[40:], init[40:])  # untouched rows stay
            assert not torch.equal(trainer.w_in[:40], init[:40])
            states.append((trainer.w_in.clone(), trainer.acc_in.clone()))
        (w_dense, acc_dense), (w_sparse, acc_sparse) = states
        torch.testing.assert_close(acc_dense, acc_sparse, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(w_dense, w_sparse, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sg", [True, False])
def test_dense_and_sparse_apply_train_alike(lee_corpus: Path, sg: bool) -> None:
    """End to end, row accumulators: the same vectors up to float rounding."""
    base = dict(sg=sg, epochs=1, dim=16, min_count=3, batch_size=1024, device="cpu")
    dense = train_sgns(_sentences(lee_corpus), SGNSConfig(**base, apply_mode="dense"), quiet=True)
    sparse = train_sgns(_sentences(lee_corpus), SGNSConfig(**base, apply_mode="sparse"), quiet=True)
    np.testing.assert_allclose(dense.table.vectors, sparse.table.vectors, atol=2e-3)
    assert np.abs(dense.table.vectors).mean() > 0.01  # it did train


def test_constant_schedule_keeps_the_base_rate(lee_corpus: Path) -> None:
    import tempfile

    import torch

    from embedops.train.gpu_sgns import _Trainer, encode_corpus

    with tempfile.TemporaryDirectory() as tmp:
        corpus = encode_corpus(_sentences(lee_corpus), Path(tmp), min_count=3)
        for schedule, expected in [("constant", 0.15), ("linear", 0.075), ("auto", 0.15)]:
            config = SGNSConfig(device="cpu", lr=0.15, lr_schedule=schedule)
            trainer = _Trainer(config, corpus, "cpu", torch)
            trainer.words_done = trainer.total_words // 2
            assert trainer.lr() == pytest.approx(expected, rel=1e-3)


def test_auto_schedule_is_constant_for_adagrad_only() -> None:
    assert SGNSConfig().schedule == "constant" and SGNSConfig().base_lr == 0.3
    assert SGNSConfig(sg=False).schedule == "constant" and SGNSConfig(sg=False).base_lr == 0.2
    assert SGNSConfig(update="sgd").schedule == "linear"
    assert SGNSConfig(lr_schedule="linear").schedule == "linear"


def test_auto_shuffle_is_file_order_for_skipgram_and_corpus_for_cbow() -> None:
    assert SGNSConfig().order == "chunk" and SGNSConfig(sg=False).order == "corpus"
    assert SGNSConfig(shuffle="corpus").order == "corpus"
    assert SGNSConfig(sg=False, shuffle="chunk").order == "chunk"


def test_saved_vectors_are_input_plus_context_by_default(lee_corpus: Path) -> None:
    base = dict(epochs=1, dim=16, min_count=3, batch_size=1024, device="cpu")
    summed = train_sgns(_sentences(lee_corpus), SGNSConfig(**base), quiet=True)
    alone = train_sgns(_sentences(lee_corpus), SGNSConfig(**base, vectors="input"), quiet=True)
    assert summed.input_vectors is not None and summed.context_vectors is not None
    np.testing.assert_array_equal(alone.table.vectors, summed.input_vectors)  # same training
    np.testing.assert_array_equal(
        summed.table.vectors, summed.input_vectors + summed.context_vectors
    )
    assert np.abs(summed.context_vectors).mean() > 0.01
    assert SGNSConfig().saved_vectors == "sum" and SGNSConfig(sg=False).saved_vectors == "input"
    with pytest.raises(InvalidInput):
        SGNSConfig(vectors="output")


@pytest.mark.parametrize("n", [10_000, 25_001])
def test_epoch_chunks_read_every_id_once_in_random_blocks(n: int) -> None:
    """Shuffled chunks: the same ids as the file (plus a -1 after each block), each chunk
    within the chunk size, blocks from all over the file, a different order each epoch."""
    from embedops.train.gpu_sgns import epoch_chunks

    ids = np.arange(n, dtype=np.int32)
    ids[::7] = -1
    rng = np.random.default_rng(0)
    first = list(epoch_chunks(ids, 4000, 500, rng))
    again = list(epoch_chunks(ids, 4000, 500, rng))
    for chunks in (first, again):
        assert all(c.size <= 4000 + 4000 // 500 for c in chunks)
        seen = np.concatenate(chunks)
        np.testing.assert_array_equal(np.sort(seen[seen >= 0]), ids[ids >= 0])
        assert (seen < 0).sum() == (ids < 0).sum() + -(-n // 500)  # one end mark per block
    assert first[0][0] != 0 or first[1][0] != 4000  # not the file order
    assert not all(np.array_equal(a, b) for a, b in zip(first, again, strict=False))
    spread = np.concatenate([c[c >= 0] for c in first[:1]])
    assert spread.max() - spread.min() > n // 2  # the first chunk samples the whole file
    ordered = list(epoch_chunks(ids, 4000, 500, None))
    np.testing.assert_array_equal(np.concatenate(ordered), ids)
    whole = list(epoch_chunks(ids, n, 500, rng))
    assert len(whole) == 1 and np.array_equal(whole[0], ids)  # fits: one piece, no marks


def test_shuffle_options_train_and_are_checked(lee_corpus: Path) -> None:
    base = dict(epochs=1, dim=16, min_count=3, batch_size=1024, device="cpu", chunk_tokens=3000)
    for sg in (True, False):
        for extra in (
            {"shuffle": "chunk"},
            {"shuffle": "corpus", "shuffle_block": 700, "skip_target_negatives": True},
        ):
            result = train_sgns(_sentences(lee_corpus), SGNSConfig(sg=sg, **base, **extra), True)
            assert np.isfinite(result.table.vectors).all()
            assert np.abs(result.table.vectors).mean() > 0.01
    for bad in ({"shuffle": "epoch"}, {"shuffle_block": 0}):
        with pytest.raises(InvalidInput):
            SGNSConfig(**bad)


def test_negatives_equal_to_the_target_get_no_gradient() -> None:
    import tempfile

    import torch

    from embedops.train.gpu_sgns import _Trainer, encode_corpus

    sentences = [["a", "b", "c"]] * 10
    with tempfile.TemporaryDirectory() as tmp:
        corpus = encode_corpus(lambda: iter(sentences), Path(tmp), min_count=1)
        moved = []
        for skip in (False, True):
            config = SGNSConfig(device="cpu", dim=4, negative=3, skip_target_negatives=skip)
            trainer = _Trainer(config, corpus, "cpu", torch)
            trainer._negatives = lambda n: torch.zeros((n, 3), dtype=torch.long)  # all "a"
            h = torch.ones(2, 4)
            trainer._output_step(h, torch.tensor([0, 1]))  # pair 0: target "a" = its negatives
            moved.append(trainer.acc_out.clone())
        # w_out starts at zero, so every sigmoid is 0.5: row "a" sums (0.5 - 1) + 6 x 0.5 with
        # the three negatives of pair 0, (0.5 - 1) + 3 x 0.5 without them; row "b" -0.5.
        assert moved[0][:2].tolist() == pytest.approx([2.5**2, 0.25])
        assert moved[1][:2].tolist() == pytest.approx([1.0, 0.25])
