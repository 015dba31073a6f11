"""Logging and third-party output of the command line: one voice, embedops' own.

``configure`` routes every log record through one stderr handler that prints
``warning: message`` (``level name: message`` with ``-v``), keeps embedops' own records at the
chosen level and holds libraries (gensim, bm25s, transformers, sentence-transformers,
onnxruntime, faiss, and anything that logs on the root logger) to errors unless the user asks
for more with ``-v``/``-vv``/``--log-level``. It also switches off the tqdm bars libraries draw,
so the only progress display is embedops' own (``embedops.progress``).
"""

from __future__ import annotations

import logging
import os
import sys

LEVELS = ("debug", "info", "warning", "error")
OWN = "embedops"
#: Environment switches read by libraries when they are imported (set before that happens).
QUIET_ENV = {
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


class _Filter(logging.Filter):
    """Let embedops' records through from ``own`` up, everyone else's from ``others`` up."""

    def __init__(self, own: int, others: int) -> None:
        super().__init__()
        self.own, self.others = own, others

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name == OWN or record.name.startswith(OWN + ".")
        return record.levelno >= (self.own if ours else self.others)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one stderr handler ``configure`` installs (found again and replaced on re-runs)."""


def levels(verbose: int = 0, log_level: str | None = None) -> tuple[int, int]:
    """``(embedops level, library level)`` for ``-v`` repeated ``verbose`` times and an
    explicit ``--log-level`` (which sets embedops' level; libraries stay at warning or above
    unless ``-vv``)."""
    own = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    others = {0: logging.ERROR, 1: logging.WARNING}.get(verbose, logging.DEBUG)
    if log_level is not None:
        own = getattr(logging, log_level.upper())
        if verbose < 2:
            others = max(own, logging.WARNING)
    return own, others


def configure(verbose: int = 0, log_level: str | None = None) -> None:
    """Install the stderr handler and silence library progress bars (idempotent)."""
    if log_level is not None and log_level.lower() not in LEVELS:
        from embedops.errors import InvalidInput

        raise InvalidInput(f"unknown --log-level {log_level!r}", f"use one of {', '.join(LEVELS)}")
    quiet_libraries()
    own, others = levels(verbose, log_level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    handler = _Handler(sys.stderr)
    fmt = "%(levelname)s %(name)s: %(message)s" if verbose else "%(levelname)s: %(message)s"
    handler.setFormatter(_LowerLevel(fmt))
    handler.addFilter(_Filter(own, others))
    root.addHandler(handler)
    root.setLevel(min(own, others))
    for name in ("gensim", "bm25s", "transformers", "sentence_transformers", "onnxruntime",
                 "faiss", "urllib3", "huggingface_hub", "filelock", "torch"):
        # Libraries that set their own level (or call basicConfig) still go through the filter.
        logging.getLogger(name).setLevel(others)


class _LowerLevel(logging.Formatter):
    """``warning: …`` rather than ``WARNING:root:…``."""

    def format(self, record: logging.LogRecord) -> str:
        record.levelname = record.levelname.lower()
        return super().format(record)


def quiet_libraries() -> None:
    """Turn off the progress bars and advisory chatter of libraries: environment switches for
    those not imported yet, their own switches for those already loaded."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    # Libraries imported before this call read their switches already: flip them directly.
    for module, names in (("transformers.utils.logging",
                           ("disable_progress_bar", "set_verbosity_error")),
                          ("huggingface_hub.utils", ("disable_progress_bars",))):
        loaded = sys.modules.get(module)
        for name in names if loaded is not None else ():
            switch = getattr(loaded, name, None)
            if callable(switch):
                switch()
