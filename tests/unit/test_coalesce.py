"""Concurrent requests for one model are encoded together, in order, each getting its own rows;
an encode's error reaches every request it held; different models never wait on each other."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from embedops.serve.coalesce import Coalescer


def _fake(calls: list[tuple[str, int]], gate: threading.Event | None = None):
    def encode(texts: list[str], model: str) -> np.ndarray:
        calls.append((model, len(texts)))
        if gate is not None and model != "other":
            gate.wait(5)
        time.sleep(0.01)
        return np.asarray([[float(t), len(model)] for t in texts], dtype=np.float32)

    return encode


def test_concurrent_requests_share_encodes_and_get_their_own_rows() -> None:
    calls: list[tuple[str, int]] = []
    gate = threading.Event()
    coalescer = Coalescer(_fake(calls, gate), max_texts=64)
    jobs = [[str(10 * i + j) for j in range(3)] for i in range(12)]
    with ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(coalescer.embed, texts, "m") for texts in jobs]
        time.sleep(0.2)  # all queued behind the first encode
        gate.set()
        results = [f.result(timeout=10) for f in futures]
    for texts, got in zip(jobs, results, strict=True):
        assert got[:, 0].tolist() == [float(t) for t in texts]
    assert sum(n for _, n in calls) == 36 and len(calls) < 12  # batched, nothing twice


def test_max_texts_bounds_a_batch() -> None:
    calls: list[tuple[str, int]] = []
    gate = threading.Event()
    coalescer = Coalescer(_fake(calls, gate), max_texts=4)
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(coalescer.embed, ["1", "2"], "m") for _ in range(6)]
        time.sleep(0.2)
        gate.set()
        [f.result(timeout=10) for f in futures]
    assert max(n for _, n in calls) <= 4 and sum(n for _, n in calls) == 12


def test_errors_reach_every_request_of_the_batch_and_the_next_one_works() -> None:
    fail = {"on": True}

    def encode(texts: list[str], model: str) -> np.ndarray:
        time.sleep(0.05)
        if fail["on"]:
            raise ValueError("boom")
        return np.zeros((len(texts), 2), dtype=np.float32)

    coalescer = Coalescer(encode)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(coalescer.embed, ["a"], "m") for _ in range(4)]
        for f in futures:
            with pytest.raises(ValueError, match="boom"):
                f.result(timeout=10)
    fail["on"] = False
    assert coalescer.embed(["a", "b"], "m").shape == (2, 2)


def test_models_do_not_wait_on_each_other() -> None:
    calls: list[tuple[str, int]] = []
    gate = threading.Event()
    coalescer = Coalescer(_fake(calls, gate))
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(coalescer.embed, ["1"], "slow")
        time.sleep(0.05)
        assert coalescer.embed(["2"], "other")[0, 1] == 5.0  # while "slow" is held
        assert not slow.done()
        gate.set()
        assert slow.result(timeout=10)[0, 0] == 1.0
