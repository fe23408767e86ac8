"""A real kernel SIGKILLed mid-cell: re-running the cell replays what completed."""

from __future__ import annotations

import re
import time
from pathlib import Path

LOOP = """
import durable_nb as dnb, time

@dnb.step
def write_line(i):
    with open({out!r}, "a") as f:
        f.write(f"line {{i}}\\n")
    time.sleep(0.1)
    return i

done = [write_line(i) for i in range(20)]
print("done", len(done))
"""


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_sigkill_mid_cell_then_rerun_replays_completed_steps(start_kernel, workdir):
    out = workdir / "lines.txt"
    code = LOOP.format(out=str(out))
    k = start_kernel()
    k.send(code, cell_id="loop-cell")
    deadline = time.monotonic() + 60
    while len(_lines(out)) < 10:
        assert time.monotonic() < deadline, "the cell never wrote 10 lines"
        time.sleep(0.01)
    k.kill()
    killed_at = len(_lines(out))
    assert 10 <= killed_at < 20

    k2 = start_kernel()
    result = k2.ok(code, cell_id="loop-cell")
    assert "done 20" in result.stdout
    lines = _lines(out)
    # Each step ran once, except the one in flight at the kill, which may run twice.
    assert len(lines) in (20, 21), lines
    assert sorted(set(lines), key=lambda s: int(s.split()[1])) == [f"line {i}" for i in range(20)]
    assert len(lines) - len(set(lines)) <= 1
    # The re-run took the steps completed before the kill from the journal.
    assert "replayed from the journal" in result.stdout
    n_replayed = int(re.search(r"(\d+) steps? replayed", result.stdout).group(1))
    assert n_replayed >= killed_at - 1, (n_replayed, killed_at)
    # The crash is recorded: the interrupted cell and the dead run are marked.
    status = k2.value(
        "%durable sql SELECT status FROM cells WHERE cell_id = 'loop-cell' ORDER BY seq"
    )
    assert "crashed" in status and "ok" in status
    runs = k2.value("%durable sql SELECT status FROM runs ORDER BY started")
    assert "crashed" in runs


def test_rerun_after_clean_restart_replays_every_step(start_kernel, workdir):
    out = workdir / "lines.txt"
    code = LOOP.format(out=str(out)).replace("time.sleep(0.1)", "pass")
    k = start_kernel()
    k.ok(code, cell_id="c1")
    assert len(_lines(out)) == 20
    k.close()
    k2 = start_kernel()
    result = k2.ok(code, cell_id="c1")
    assert len(_lines(out)) == 20  # nothing ran again
    assert "20 steps replayed" in result.stdout
    assert k2.value("done == list(range(20))") == "True"
