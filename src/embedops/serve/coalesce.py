"""Concurrent embeddings requests for one model, encoded together (dynamic batching).

Each request of a busy server would otherwise run its own encode at the same moment as the
others, every one with the encoder's full thread pool, on the same cores: they thrash, the
batches are only as large as one request, and the unluckiest request waits longest. Here one
encode runs per model at a time. Requests that arrive meanwhile queue, and the next encode takes
the queued requests together, first come first served, up to ``max_texts`` texts, in one
``Embedops.embed`` call (which the encoder batches by length). A request's thread waits for its
own vectors; a thread that finds no encode running leads: it runs encodes until its own request
is answered, then hands the lead to the oldest request still waiting.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from fastapi import FastAPI

Encode = Callable[[list[str], str], np.ndarray]
#: Texts encoded together at most (a request with more is encoded alone): beyond a few hundred
#: short texts a larger batch saves nothing per text, and the first request waits longer.
MAX_TEXTS = 256

_GUARD = threading.Lock()


@dataclass(eq=False)
class _Job:
    """One request's texts, and its answer once encoded."""

    texts: list[str]
    lead: bool = False
    vectors: np.ndarray | None = None
    error: BaseException | None = None
    wake: threading.Event = field(default_factory=threading.Event)

    @property
    def done(self) -> bool:
        return self.vectors is not None or self.error is not None

    def answer(self) -> np.ndarray:
        if self.error is not None:
            raise self.error
        assert self.vectors is not None
        return self.vectors


class Coalescer:
    """Encodes the texts of concurrent requests for the same model together (see the module)."""

    def __init__(self, encode: Encode, max_texts: int = MAX_TEXTS) -> None:
        self._encode = encode
        self._max = max(1, max_texts)
        self._lock = threading.Lock()
        self._queues: dict[str, deque[_Job]] = {}
        self._leading: set[str] = set()

    def embed(self, texts: list[str], model: str) -> np.ndarray:
        """Vectors of ``texts`` under ``model``, as ``encode(texts, model)`` gives them (its
        errors raised here too), encoded with whatever else was queued for ``model``."""
        job = _Job(list(texts))
        with self._lock:
            self._queues.setdefault(model, deque()).append(job)
            job.lead = model not in self._leading
            self._leading.add(model)
        if not job.lead:
            job.wake.wait()  # answered, or handed the lead
        if job.lead:
            while not job.done:
                self._run(self._take(model), model)
            self._hand_over(model)
        return job.answer()

    def _take(self, model: str) -> list[_Job]:
        """The oldest queued jobs of ``model``, at most ``max_texts`` texts (at least one job)."""
        with self._lock:
            queue = self._queues[model]
            batch = [queue.popleft()]
            total = len(batch[0].texts)
            while queue and total + len(queue[0].texts) <= self._max:
                total += len(queue[0].texts)
                batch.append(queue.popleft())
            return batch

    def _run(self, batch: list[_Job], model: str) -> None:
        """One encode of every text of ``batch``; each job gets its rows (or the error)."""
        texts = [text for job in batch for text in job.texts]
        try:
            vectors = self._encode(texts, model)
        except BaseException as exc:  # every waiting request must hear of it
            for job in batch:
                job.error = exc
                job.wake.set()
            return
        start = 0
        for job in batch:
            job.vectors = vectors[start:start + len(job.texts)]
            start += len(job.texts)
            job.wake.set()

    def _hand_over(self, model: str) -> None:
        """Wake the oldest waiting job of ``model`` as the next leader, or end the lead."""
        with self._lock:
            queue = self._queues.get(model)
            if queue:
                queue[0].lead = True
                queue[0].wake.set()
            else:
                self._leading.discard(model)


def coalescer_for(app: FastAPI, encode: Encode) -> Coalescer:
    """The app's Coalescer (``app.state.coalescer``), made on first use."""
    coalescer = getattr(app.state, "coalescer", None)
    if coalescer is None:
        with _GUARD:
            coalescer = getattr(app.state, "coalescer", None)
            if coalescer is None:
                coalescer = Coalescer(encode)
                app.state.coalescer = coalescer
    assert isinstance(coalescer, Coalescer)
    return coalescer
