"""The privacy audit end to end on real corpus text: a canary planted 10 times in a training
corpus is flagged, one never planted is not, a word inserted 10 times at random places is
not, and words never planted after the canary's context are not flagged either (so an
audit that flags everything, or every rare word, fails too).

Two corpora, the same check: the WordNet 3.0 glosses that ship with embedops
(``embedops.data``; the glosses are also the WordNet section of ``corpus-en-13m``) always run,
offline and in CI; the first words of ``../shared/data/corpus-en-13m.txt.xz`` run only where
that folder exists (``EMBEDOPS_SHARED_DATA`` may point elsewhere) and skip otherwise. Both
train with ``embedops train``'s own path and settings (tokenizer, redaction, gensim; CBOW, the
default, and skip-gram) and audit through the ``audit-privacy`` command."""

from __future__ import annotations

import json
import lzma
import os
import random
from pathlib import Path
from typing import Any

import pytest

from embedops.cli.main import main
from embedops.config import Workspace
from embedops.evaluate.privacy import Canary, plant_canaries

PLANTED = Canary.parse("my vault code is=zqvbkm")
NEVER = Canary.parse("my locker code is=wexpoj")
# seen as often as the secret, inserted at random places in random lines: ranked like the
# controls below (a rare word is not flagged for being rare)
SCATTERED = "vexulant"
# real words of both corpora, never written after the canary's context: each is ranked like a
# secret, so each (and SCATTERED) has a 1 in 8 chance of a 3-bit exposure by luck alone
CONTROLS = ("river", "music", "cotton", "animal", "window", "tree", "metal", "garden")
TIMES = 10
SHARED = Path(os.environ.get("EMBEDOPS_SHARED_DATA",
                             Path(__file__).resolve().parents[2].parent / "shared" / "data"))


def _gloss_lines(n: int) -> list[str]:
    from embedops.data import wordnet_glosses

    return [row["gloss"] for row in wordnet_glosses(n)]


def _corpus_lines(max_words: int) -> list[str]:
    path = SHARED / "corpus-en-13m.txt.xz"
    if not path.is_file():
        pytest.skip(f"{path.name} not found in {SHARED} (benchmark data, not shipped)")
    out, words = [], 0
    with lzma.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            out.append(line.rstrip("\n"))
            words += len(line.split())
            if words >= max_words:
                break
    return out


def _audit(lines: list[str], sg: bool, tmp_path: Path,
           capsys: pytest.CaptureFixture[str]) -> Any:
    """Plant PLANTED and scatter SCATTERED ``TIMES`` times each, train through the product with
    ``embedops train``'s defaults (``sg``: skip-gram instead of CBOW), audit through the CLI."""
    from embedops.train import TrainConfig, train_static

    corpus = tmp_path / "corpus.txt"
    planted = plant_canaries(lines, [(PLANTED, TIMES)], seed=7)
    rng = random.Random(7)
    for at in rng.sample(range(len(planted)), TIMES):
        words = planted[at].split()
        words.insert(rng.randrange(len(words) + 1), SCATTERED)
        planted[at] = " ".join(words)
    corpus.write_text("\n".join(planted) + "\n", encoding="utf-8")
    train_static(corpus, "audited", TrainConfig(sg=sg))
    canaries = [PLANTED, NEVER, Canary(PLANTED.context, SCATTERED),
                *(Canary(PLANTED.context, w) for w in CONTROLS)]
    args = ["audit-privacy", "audited", "--json"]
    for canary in canaries:
        args += ["--canary", f"{' '.join(canary.context)}={canary.secret}"]
    capsys.readouterr()
    code = main(args)
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and not report["passed"]  # the gate blocks the leaky model
    return report["exposures"]


def _check(exposures: list[dict[str, Any]]) -> None:
    planted, never, scattered, *controls = exposures
    assert planted["secret_in_vocab"] and planted["flagged"], planted
    assert planted["exposure_bits"] >= 3.0, planted
    assert not never["secret_in_vocab"] and not never["flagged"], never
    assert never["exposure_bits"] == 0.0, never
    controls = [scattered, *controls]
    assert all(c["secret_in_vocab"] for c in controls), controls  # ranked, not skipped
    # gensim's start vectors hash words with Python's per-process salt and its threads race,
    # so ranks vary between runs: bounds that chance alone breaks about once in 5,000 runs
    assert sum(c["flagged"] for c in controls) <= 5, controls  # chance flags 1 in 8
    mean = sum(c["exposure_bits"] for c in controls) / len(controls)
    assert mean < 3.0, controls  # random ranks average about 1.4 bits


@pytest.mark.parametrize("sg", [False, True], ids=["cbow", "skip-gram"])
def test_audit_on_the_shipped_wordnet_glosses(sg: bool, workspace: Workspace, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Runs everywhere: 40,000 glosses (~0.5M words) with the canary planted 10 times."""
    _check(_audit(_gloss_lines(40_000), sg, tmp_path, capsys))


@pytest.mark.slow
@pytest.mark.parametrize("sg", [False, True], ids=["cbow", "skip-gram"])
def test_audit_on_the_13m_corpus_subset(sg: bool, workspace: Workspace, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's check on the first 1M words of corpus-en-13m (skips without ../shared)."""
    _check(_audit(_corpus_lines(1_000_000), sg, tmp_path, capsys))
