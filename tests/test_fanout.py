"""dnb.map in real kernels: a SIGKILL mid-map on Dask, executors, collected errors, replay.

Real effects are counted by the flaky service (its per-path request counts).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flaky_service import stats

import durable_nb as dnb

pytest.importorskip("distributed")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _counts(url: str, prefix: str) -> dict[str, int]:
    """The service's request counts for ``/work/<prefix>/...``, keyed by the rest."""
    head = f"/work/{prefix}/"
    return {p[len(head) :]: n for p, n in stats(url)["by_path"].items() if p.startswith(head)}


def _printed(result) -> list[str]:
    """The words a cell printed, without durable_nb's own lines (the replay note)."""
    return [w for line in result.stdout.splitlines() if not line.startswith("durable_nb:")
            for w in line.split()]  # fmt: skip


def _replayed(stderr: str) -> int:
    found = re.search(r"durable_nb: (\d+) steps? replayed", stderr)
    return int(found.group(1)) if found else 0


# -- 1. SIGKILL while a map runs on a LocalCluster, then resume ------------------

DASK_SETUP = """
import logging, time
import durable_nb as dnb
from distributed import Client, LocalCluster
from flaky_service import call

logging.getLogger("distributed").setLevel(logging.ERROR)
URL = {url!r}
# In-process workers: the kill takes them down with the kernel, as a crash would.
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                       dashboard_address=None)
client = Client(cluster)


@dnb.step(retries=2, initial=0.01)
def work(i):
    call(URL, f"kill/{{i}}")
    time.sleep(0.02)
    return i * i
"""

DASK_MAP = """
out = dnb.map(work, range(200), executor=client)
print("complete", out == [i * i for i in range(200)], len(out))
"""

JOURNALED = """
import json
df = get_ipython().run_line_magic(
    "durable", "sql SELECT args FROM steps WHERE status = 'ok' AND name = 'work'")
print(json.dumps(sorted(int(a.strip("(),")) for a in df["args"])))
"""


def test_sigkill_mid_map_on_dask_then_rerun_resumes(start_kernel, service):
    k = start_kernel()
    k.ok(DASK_SETUP.format(url=service), cell_id="setup")
    k.send(DASK_MAP, cell_id="map")
    deadline = time.monotonic() + 90
    while stats(service)["total"] < 60:
        assert time.monotonic() < deadline, "the map never reached 60 requests"
        time.sleep(0.005)
    k.kill()
    time.sleep(0.2)  # let the service finish counting requests sent before the kill
    before = _counts(service, "kill")
    assert len(before) < 200, "the map finished before the kill"

    k2 = start_kernel()
    k2.ok(DASK_SETUP.format(url=service), cell_id="setup")
    journaled = json.loads(k2.ok(JOURNALED).stdout)
    assert journaled, "nothing was journaled before the kill"
    result = k2.ok(DASK_MAP, cell_id="map")
    assert "complete True 200" in result.stdout, result
    after = _counts(service, "kill")
    assert sorted(int(i) for i in after) == list(range(200))
    # What the journal held at the kill replayed: each of those ran exactly once.
    assert _replayed(result.stdout) == len(journaled), result.stdout
    assert all(after[str(i)] == 1 for i in journaled), {i: after[str(i)] for i in journaled}
    # The rest ran on the re-run; those in flight at the kill ran at most twice.
    assert all(1 <= n <= 2 for n in after.values()), after
    twice = [i for i, n in after.items() if n == 2]
    assert all(i in before for i in twice), twice


# -- 2. threads, processes and Dask give the same, correct results ----------------

EXEC_SETUP = """
import logging
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
import durable_nb as dnb
from flaky_service import call

logging.getLogger("distributed").setLevel(logging.ERROR)
URL = {url!r}


@dnb.step(retries=2, initial=0.01)
def square(x):
    tag, i = x
    call(URL, f"{{tag}}/{{i}}")
    return i * i


def items(tag, n=30):
    return [(tag, i) for i in range(n)]


want = [i * i for i in range(30)]
"""

EXEC_CELLS = {
    "default": 'print(dnb.map(square, items("default"), max_workers=3) == want)',
    "threads": """
with ThreadPoolExecutor(4) as pool:
    print(dnb.map(square, items("threads"), executor=pool, progress=False) == want)
""",
    "processes": """
with ProcessPoolExecutor(2) as pool:
    print(dnb.map(square, items("processes"), executor=pool, progress=False) == want)
""",
    "unordered": """
pairs = dnb.map(square, items("unordered"), ordered=False, progress=False)
print(sorted(pairs) == [(x, x[1] ** 2) for x in items("unordered")])
""",
}

DASK_CLUSTER = """
from distributed import Client, LocalCluster
# Worker processes: the step travels by cloudpickle, as on a real cluster.
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                       dashboard_address=None)
client = Client(cluster)
maps = []
_map = client.map
client.map = lambda *a, **kw: maps.append(1) or _map(*a, **kw)  # count submissions
"""

DASK_RUN = """
print(dnb.map(square, items("dask"), executor=client, progress=False) == want, len(maps))
"""


def test_threads_processes_and_dask_give_correct_results(start_kernel, service):
    k = start_kernel()
    k.ok(EXEC_SETUP.format(url=service), cell_id="setup")
    for tag, code in EXEC_CELLS.items():
        result = k.ok(code, cell_id=tag)
        assert result.stdout.strip() == "True", (tag, str(result))
        assert _counts(service, tag) == {str(i): 1 for i in range(30)}, tag
    k.ok(DASK_CLUSTER, cell_id="cluster", timeout=120)
    result = k.ok(DASK_RUN, cell_id="dask")
    assert result.stdout.split() == ["True", "1"], str(result)
    assert _counts(service, "dask") == {str(i): 1 for i in range(30)}
    # Re-running the finished map replays every item: no client.map, no request.
    total = stats(service)["total"]
    result = k.ok(DASK_RUN, cell_id="dask")
    assert _printed(result) == ["True", "1"], str(result)
    assert _replayed(result.stdout) == 30
    assert stats(service)["total"] == total
    k.ok("client.close(); cluster.close()")


# -- 3. errors="collect", .retry(), and errors="raise" ----------------------------

ERR_SETUP = """
import time
import durable_nb as dnb
from flaky_service import call

URL = {url!r}
BROKEN = {{3, 7}}
SLOW = set()


@dnb.step(retries=1, initial=0.01)
def flaky(i):
    call(URL, f"c/{{i}}")
    if i in SLOW:
        time.sleep(0.2)
    if i in BROKEN:
        raise RuntimeError(f"item {{i}} is broken")
    return i * 10
"""

COLLECT = """
r = dnb.map(flaky, range(10), errors="collect", max_workers=4)
print(json.dumps([sorted(i for i, _ in r.errors), [type(e).__name__ for _, e in r.errors],
                  [x if isinstance(x, int) else type(x).__name__ for x in r]]))
"""

RAISE = """
try:
    dnb.map(flaky, range(100, 110), max_workers=1)
except dnb.StepFailed as exc:
    print("raised", exc.step, len(exc.errors), exc.__notes__)
else:
    print("done")
"""


def test_collect_then_retry_and_raise_journals_what_completed(start_kernel, service):
    k = start_kernel()
    k.ok("import json\n" + ERR_SETUP.format(url=service), cell_id="setup")
    got = json.loads(k.ok(COLLECT, cell_id="collect").stdout.splitlines()[0])
    tens = [i * 10 for i in range(10)]
    assert got[0] == [3, 7] and got[1] == ["StepFailed", "StepFailed"]
    assert got[2] == [("StepFailed" if i in (3, 7) else x) for i, x in enumerate(tens)]
    assert _counts(service, "c") == {str(i): 2 if i in (3, 7) else 1 for i in range(10)}

    # The cause is fixed: one call runs just the failed items and fills them in.
    result = k.ok(f"BROKEN.clear()\nr.retry()\nprint(r == {tens!r}, r.errors)")
    assert result.stdout.strip() == "True []", str(result)
    assert _counts(service, "c") == {str(i): 3 if i in (3, 7) else 1 for i in range(10)}
    # The retried items kept their identities: the cell now replays all ten.
    got = json.loads(k.ok(COLLECT, cell_id="collect").stdout.splitlines()[0])
    assert got[:2] == [[], []] and got[2] == tens
    assert _counts(service, "c") == {str(i): 3 if i in (3, 7) else 1 for i in range(10)}

    # errors="raise": item 105 fails; what completed is journaled, the rest never starts.
    k.ok("BROKEN.add(105); SLOW.update(range(105, 110))")
    result = k.ok(RAISE, cell_id="raise")
    assert result.stdout.startswith("raised flaky 2 ['dnb.map: item 5 (105) failed"), result
    first = _counts(service, "c")
    assert all(first.get(str(i)) == 1 for i in range(100, 105)), first
    assert first[str(105)] == 2
    assert sum(first.get(str(i), 0) for i in range(106, 110)) < 4, first  # cancelled
    # Fixed and re-run: what completed replays, 105 and the cancelled ones run.
    k.ok("BROKEN.clear(); SLOW.clear()")
    result = k.ok(RAISE, cell_id="raise")
    assert _printed(result) == ["done"], str(result)
    completed = [i for i in range(100, 110) if i != 105 and str(i) in first]
    assert _replayed(result.stdout) == len(completed), result.stdout
    final = _counts(service, "c")
    assert all(final[str(i)] == first[str(i)] for i in completed)
    assert all(final[str(i)] == 1 for i in range(106, 110) if str(i) not in first)


# -- 4. a finished map replays without submitting anything -----------------------

REPLAY_SETUP = """
from concurrent.futures import ThreadPoolExecutor
import durable_nb as dnb
from flaky_service import call

URL = {url!r}


class CountingPool(ThreadPoolExecutor):
    submits = 0

    def submit(self, *args, **kwargs):
        CountingPool.submits += 1
        return super().submit(*args, **kwargs)


@dnb.step
def fetch(i):
    return call(URL, f"r/{{i}}")["n"]
"""

REPLAY_MAP = """
with CountingPool(4) as pool:
    out = dnb.map(fetch, range(100), executor=pool, progress=False)
print(out == [1] * 100, CountingPool.submits)
"""


def test_finished_map_replays_without_submission_after_restart(start_kernel, service):
    k = start_kernel()
    k.ok(REPLAY_SETUP.format(url=service), cell_id="setup")
    result = k.ok(REPLAY_MAP, cell_id="map")
    ok, submits = result.stdout.split()
    assert ok == "True" and int(submits) > 0, str(result)
    total = stats(service)["total"]
    assert total == 100
    result = k.ok(REPLAY_MAP, cell_id="map")  # same kernel
    assert _printed(result) == ["True", submits], str(result)
    k.close()
    k2 = start_kernel()  # a new kernel on the same journal
    k2.ok(REPLAY_SETUP.format(url=service), cell_id="setup")
    result = k2.ok(REPLAY_MAP, cell_id="map")
    assert _printed(result) == ["True", "0"], str(result)
    assert _replayed(result.stdout) == 100
    assert stats(service)["total"] == total


# -- 5. the example notebook, run headless twice ----------------------------------


def test_example_notebook_fans_out_then_replays(tmp_path):
    for name in ("02_fanout_dask.ipynb", "flaky_service.py"):
        shutil.copy(NOTEBOOKS / name, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "DURABLE_NB"))}
    cli = Path(sys.executable).with_name("durable-nb")
    command = [str(cli), "run", str(tmp_path / "02_fanout_dask.ipynb")]
    runs = []
    for _ in range(2):
        runs.append(subprocess.run(command, env=env, cwd=tmp_path, capture_output=True,
                                   text=True, timeout=120))  # fmt: skip
    for run in runs:
        assert run.returncode == 0, run.stdout + run.stderr
        assert "provisioned 200 nodes" in run.stdout, run.stdout
    # The second run's map replayed every item: the (new) service saw no request.
    assert "200 steps replayed from the journal" in runs[1].stdout + runs[1].stderr
    assert "{'total': 0, 'ok': 0, 'failed': 0}" in runs[1].stdout, runs[1].stdout


# -- 6. a plain script: progress counts, replay; and the misuse errors -----------

SCRIPT = """
import durable_nb as dnb

@dnb.step
def double(x):
    return 2 * x

print(dnb.map(double, range(20)) == [2 * x for x in range(20)])
"""


def test_script_shows_progress_counts_and_replays(tmp_path):
    script = tmp_path / "fan.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_NB")}
    for done, replayed in ((20, 0), (0, 20)):
        run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert run.returncode == 0 and run.stdout.strip() == "True", run.stderr
        assert f"done={done} replayed={replayed} failed=0" in run.stderr, run.stderr


def test_map_needs_a_step_and_a_known_error_mode():
    with pytest.raises(TypeError, match=r"needs a @dnb\.step function"):
        dnb.map(lambda x: x, [1])
    with pytest.raises(ValueError, match="errors must be"):
        dnb.map(dnb.step(abs), [1], errors="ignore")


INTERRUPT_CELL = """
import time
import durable_nb as dnb
from flaky_service import call
URL = {url!r}

@dnb.step
def slow(i):
    call(URL, f"int/{{i}}")
    time.sleep(1.5)
    return i

out = dnb.map(slow, range(8), max_workers=4, progress=False)
"""


def test_interrupt_waits_for_running_items_and_journals_them(start_kernel, service):
    k = start_kernel()
    msg_id = k.send(INTERRUPT_CELL.format(url=service), cell_id="int")
    deadline = time.monotonic() + 30
    while sum(_counts(service, "int").values()) < 4:  # the first four are running
        assert time.monotonic() < deadline, "the map never started"
        time.sleep(0.05)
    k.km.interrupt_kernel()
    result = k.wait(msg_id)
    assert result.error and result.error["ename"] == "KeyboardInterrupt", str(result)
    started = _counts(service, "int")
    assert sorted(started) == ["0", "1", "2", "3"], started  # nothing new started
    k.close()
    k2 = start_kernel()
    result = k2.ok(INTERRUPT_CELL.format(url=service), cell_id="int")
    # The four that were running finished before the interrupt took effect: they replay.
    assert _replayed(result.stdout) == 4, result.stdout
    assert _counts(service, "int") == {str(i): 1 for i in range(8)}
