"""Steps in real kernels: retries, timeouts, replay, identity, fresh, clock, threads.

Every count here is of real executions: lines appended to a file by the step, or
requests the flaky service (its own process) received.
"""

from __future__ import annotations

import time
from pathlib import Path

from flaky_service import configure, stats

PRELUDE = """
import asyncio, json, os, threading, time
import durable_nb as dnb
from flaky_service import call, configure, stats
URL = {url!r}
W = {workdir!r}

def bump(name):
    path = os.path.join(W, name)
    with open(path, "a") as f:
        f.write("x\\n")
    with open(path) as f:
        return len(f.read().splitlines())
"""


def _start(start_kernel, workdir: Path, url: str | None = None):
    """A fresh kernel with the prelude (imports, URL, W, ``bump``) run in it."""
    k = start_kernel()
    k.ok(PRELUDE.format(url=url or "", workdir=str(workdir)))
    return k


def _lines(workdir: Path, name: str) -> list[str]:
    path = workdir / name
    return path.read_text().splitlines() if path.exists() else []


def _requests(url: str, path: str) -> int:
    """How many requests the service received for ``/work/<path>``."""
    return stats(url)["by_path"].get(f"/work/{path}", 0)


def _final_rows(k, where: str) -> str:
    """``[statuses] [attempts] ErrorType`` of the journaled calls matching ``where``."""
    return k.ok(
        f"df = %durable sql SELECT status, attempts, error FROM steps WHERE {where}\n"
        "print(list(df.status), list(df.attempts), df.error[0].partition(':')[0])"
    ).stdout.strip()


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# -- 1. retries with backoff ---------------------------------------------------

PROVISION = """
@dnb.step(retries=3, initial=0.01, backoff=2.0)
def provision(node):
    return call(URL, f"provision/{node}")["n"]
"""


def test_retries_until_success_and_journals_each_attempt(start_kernel, workdir, service):
    k = _start(start_kernel, workdir, service)
    k.ok(PROVISION, cell_id="def")
    configure(service, fail_next=2)
    r = k.ok("n = provision('a')\nprint('n', n)", cell_id="use")
    assert _requests(service, "provision/a") == 3
    assert "n 3" in r.stdout  # the service's own count: the third request succeeded
    out = k.ok(
        "df = %durable sql SELECT attempts, attempt_errors, status FROM steps "
        "WHERE name = 'provision'\n"
        "errs = [a['error'] for a in json.loads(df.attempt_errors[0])]\n"
        "print(len(df), int(df.attempts[0]), sum(e is not None for e in errs), df.status[0])\n"
        "print(errs)"
    ).stdout
    first, errs = out.strip().splitlines()
    assert first == "1 3 2 ok", out
    assert errs.count("ServiceError: HTTP 503: forced failure (fail_next)") == 2, errs
    assert errs.endswith("None]"), errs  # the last attempt succeeded


def test_exhausted_retries_raise_step_failed_with_every_error(start_kernel, workdir, service):
    k = _start(start_kernel, workdir, service)
    k.ok(PROVISION.replace("retries=3", "retries=2"), cell_id="def")
    configure(service, down=True)
    out = k.ok(
        "try:\n"
        "    provision('b')\n"
        "except dnb.StepFailed as e:\n"
        "    print('failed', len(e.errors), sorted({type(x).__name__ for x in e.errors}))\n"
        "    print(type(e.__cause__).__name__)",
        cell_id="use",
    ).stdout
    assert "failed 3 ['ServiceError']" in out, out
    assert "ServiceError" in _last_line(out)
    assert _requests(service, "provision/b") == 3
    # Uncaught, the cell fails with StepFailed; the journal records the final error.
    r = k.run("provision('c')", cell_id="use2")
    assert not r.ok and r.error["ename"] == "StepFailed", str(r)
    assert _requests(service, "provision/c") == 3
    out = _final_rows(k, "args = '(''c'')'")
    assert out == "['error'] [3] StepFailed", out


# -- 2. non-retryable errors -----------------------------------------------------


def test_non_retryable_error_is_raised_at_once_and_as_is(start_kernel, workdir):
    k = _start(start_kernel, workdir)
    k.ok(
        "ERR = ValueError('bad input')\n"
        "@dnb.step(retries=3, initial=0.01, non_retryable=(ValueError,))\n"
        "def validate(x):\n"
        "    bump('validate.txt')\n"
        "    raise ERR\n"
        "@dnb.step(retries=3, initial=0.01, non_retryable=(ValueError,))\n"
        "def flaky(x):\n"
        "    bump('flaky.txt')\n"
        "    raise RuntimeError('transient')\n",
        cell_id="def",
    )
    out = k.ok(
        "try:\n"
        "    validate(1)\n"
        "except BaseException as e:\n"
        "    caught = e\n"
        "print(type(caught).__name__, caught is ERR, isinstance(caught, dnb.StepFailed))",
        cell_id="use",
    ).stdout
    assert _last_line(out) == "ValueError True False", out
    assert len(_lines(workdir, "validate.txt")) == 1
    # Any other error of the same step policy is still retried.
    r = k.run("flaky(1)", cell_id="use2")
    assert r.error and r.error["ename"] == "StepFailed", str(r)
    assert len(_lines(workdir, "flaky.txt")) == 4


# -- 3. timeouts ----------------------------------------------------------------


def test_sync_step_timeout_is_not_retried_while_the_attempt_may_run(start_kernel, workdir):
    # The timed-out attempt goes on in its thread: a retry would run beside it, so by
    # default there is none, and the StepTimeout is raised at once and journaled.
    k = _start(start_kernel, workdir)
    k.ok(
        "@dnb.step(retries=3, initial=0.01, timeout=0.3)\n"
        "def slow():\n"
        "    bump('slow.txt')\n"
        "    time.sleep(3)\n"
        "    return 'late'\n",
        cell_id="def",
    )
    r = k.run("slow()", cell_id="use")
    assert r.error and r.error["ename"] == "StepTimeout", str(r)
    assert "allow_overlap=True" in r.error["evalue"], r.error["evalue"]
    assert len(_lines(workdir, "slow.txt")) == 1  # a retry would have appended at once
    out = _final_rows(k, "name = 'slow'")
    assert out == "['error'] [1] StepTimeout", out


def test_sync_step_timeout_with_allow_overlap_retries(start_kernel, workdir):
    k = _start(start_kernel, workdir)
    k.ok(
        "@dnb.step(retries=1, initial=0.01, timeout=0.3, allow_overlap=True)\n"
        "def slow():\n"
        "    bump('slow.txt')\n"
        "    time.sleep(3)\n"
        "    return 'late'\n"
        "@dnb.step(retries=0, timeout=5)\n"
        "def quick():\n"
        "    return 'on time'\n",
        cell_id="def",
    )
    out = k.ok(
        "try:\n"
        "    slow()\n"
        "except dnb.StepFailed as e:\n"
        "    print(len(e.errors), [type(x).__name__ for x in e.errors])\n"
        "    print(all(isinstance(x, TimeoutError) for x in e.errors))\n"
        "print(quick())",
        cell_id="use",
    ).stdout
    assert out.strip().splitlines() == ["2 ['StepTimeout', 'StepTimeout']", "True", "on time"]
    assert len(_lines(workdir, "slow.txt")) == 2


def test_async_step_timeout(start_kernel, workdir):
    k = _start(start_kernel, workdir)
    k.ok(
        "@dnb.step(retries=1, initial=0.01, timeout=0.3)\n"
        "async def slow_async():\n"
        "    bump('slow_async.txt')\n"
        "    await asyncio.sleep(30)\n"
        "    bump('slow_async_finished.txt')\n"
        "@dnb.step(retries=0, timeout=5)\n"
        "async def quick_async(x):\n"
        "    await asyncio.sleep(0.01)\n"
        "    return x * 2\n",
        cell_id="def",
    )
    out = k.ok(
        "try:\n"
        "    await slow_async()\n"
        "except dnb.StepFailed as e:\n"
        "    print(len(e.errors), [type(x).__name__ for x in e.errors])\n"
        "print(await quick_async(21))",
        cell_id="use",
        timeout=25,  # without the timeout the cell would wait 60 s
    ).stdout
    assert out.strip().splitlines() == ["2 ['StepTimeout', 'StepTimeout']", "42"], out
    assert len(_lines(workdir, "slow_async.txt")) == 2
    assert _lines(workdir, "slow_async_finished.txt") == []  # cancelled, not abandoned


# -- 4. a failed step runs again, its completed neighbours replay -------------------

LOOP_WITH_FAILURE = """
@dnb.step(retries=2, initial=0.01)
def provision(i):
    return call(URL, f"item/{i}")["n"]

results = []
for i in range(3):
    if i == 2:  # the service is down for the last item while BROKEN exists
        configure(URL, down=os.path.exists(os.path.join(W, "BROKEN")))
    results.append(provision(i))
print("results", results)
"""


def test_failed_step_runs_again_on_rerun_while_completed_ones_replay(
    start_kernel, workdir, service
):
    k = _start(start_kernel, workdir, service)
    (workdir / "BROKEN").touch()
    r = k.run(LOOP_WITH_FAILURE, cell_id="loop")
    assert not r.ok and r.error["ename"] == "StepFailed", str(r)
    counts = {i: _requests(service, f"item/{i}") for i in range(3)}
    assert counts == {0: 1, 1: 1, 2: 3}

    (workdir / "BROKEN").unlink()  # the person fixes the cause
    r = k.ok(LOOP_WITH_FAILURE, cell_id="loop")
    counts = {i: _requests(service, f"item/{i}") for i in range(3)}
    assert counts == {0: 1, 1: 1, 2: 4}
    assert "results [1, 1, 4]" in r.stdout
    assert "2 steps replayed from the journal" in r.stdout

    # Now everything completed: a further re-run sends no request at all.
    before = stats(service)["total"]
    r = k.ok(LOOP_WITH_FAILURE, cell_id="loop")
    assert stats(service)["total"] == before
    assert "results [1, 1, 4]" in r.stdout
    assert "3 steps replayed" in r.stdout


# -- 5. changed arguments run, same arguments replay (across a restart) ------------

WORK = """
@dnb.step
def work(x):
    return [bump("work.txt"), x]
"""


def test_changed_arguments_run_anew_same_arguments_replay_after_restart(start_kernel, workdir):
    k = _start(start_kernel, workdir)
    k.ok(WORK, cell_id="def")
    k.ok("N = 1", cell_id="args")
    k.ok("r = work(N)", cell_id="call")
    k.ok("d = work({'a': 1, 'b': [2, 3]})", cell_id="call-dict")
    assert len(_lines(workdir, "work.txt")) == 2
    k.close()

    k = _start(start_kernel, workdir)
    k.ok(WORK, cell_id="def")
    k.ok("N = 1", cell_id="args")
    r = k.ok("r = work(N)", cell_id="call")
    assert "1 step replayed" in r.stdout
    assert k.value("r") == "[1, 1]"
    # An equal dict built in another order is the same argument.
    k.ok("d = work({'b': [2, 3], 'a': 1})", cell_id="call-dict")
    assert k.value("d") == "[2, {'a': 1, 'b': [2, 3]}]"
    assert len(_lines(workdir, "work.txt")) == 2

    k.ok("N = 2", cell_id="args")
    r = k.ok("r = work(N)", cell_id="call")
    assert "replayed" not in r.stdout
    assert k.value("r") == "[3, 2]"
    k.ok("N = 1", cell_id="args")
    k.ok("r = work(N)", cell_id="call")
    assert k.value("r") == "[1, 1]"  # the first call's result, not a new run
    k.ok("d = work({'a': 1, 'b': [2, 4]})", cell_id="call-dict")
    assert k.value("d") == "[4, {'a': 1, 'b': [2, 4]}]"
    assert len(_lines(workdir, "work.txt")) == 4

    # The same call twice in one cell is two steps (occurrences), each replayed.
    k.ok("pair = [work(9), work(9)]", cell_id="twice")
    assert k.value("pair") == "[[5, 9], [6, 9]]"
    r = k.ok("pair = [work(9), work(9)]", cell_id="twice")
    assert "2 steps replayed" in r.stdout
    assert k.value("pair") == "[[5, 9], [6, 9]]"
    assert len(_lines(workdir, "work.txt")) == 6


# -- 6. explicit keys ----------------------------------------------------------------


def test_explicit_string_key_replays_from_any_cell_with_any_args(start_kernel, workdir):
    define = (
        "@dnb.step(key='create-cluster')\n"
        "def create_cluster(size):\n"
        "    return {'size': size, 'n': bump('cluster.txt')}\n"
    )
    k = _start(start_kernel, workdir)
    k.ok(define, cell_id="def")
    k.ok("c1 = create_cluster(3)", cell_id="cell-1")
    r = k.ok("c2 = create_cluster(5)", cell_id="cell-2")
    assert "1 step replayed" in r.stdout
    assert k.value("c1 == c2 == {'size': 3, 'n': 1}") == "True"
    k.close()

    k = _start(start_kernel, workdir)
    k.ok(define, cell_id="def-moved")
    k.ok("c3 = create_cluster(7)", cell_id="cell-3")
    assert k.value("c3") == "{'size': 3, 'n': 1}"
    assert len(_lines(workdir, "cluster.txt")) == 1


def test_explicit_callable_key(start_kernel, workdir):
    k = _start(start_kernel, workdir)
    k.ok(
        "@dnb.step(key=lambda node, size=1: node)\n"
        "def resize(node, size=1):\n"
        "    return (node, size, bump('resize.txt'))\n",
        cell_id="def",
    )
    k.ok("a1 = resize('a', size=1)", cell_id="cell-1")
    k.ok("a2 = resize('a', size=2)", cell_id="cell-2")
    k.ok("b1 = resize('b', 1)", cell_id="cell-2b")
    assert k.value("(a1, a2, b1)") == "(('a', 1, 1), ('a', 1, 1), ('b', 1, 2))"
    assert len(_lines(workdir, "resize.txt")) == 2
    key = k.value("%durable sql SELECT DISTINCT key FROM steps WHERE name = 'resize' ORDER BY 1")
    assert "a" in key.split() and "b" in key.split(), key


# -- 7. %durable fresh and %%durable fresh ----------------------------------------------

COUNTER = """
@dnb.step
def counter(tag):
    return bump("count.txt")
"""


def test_durable_fresh_starts_a_new_epoch(start_kernel, workdir):
    k = _start(start_kernel, workdir)
    k.ok(COUNTER, cell_id="def")
    k.ok("v = counter('c')", cell_id="c")
    k.ok("w = counter('d')", cell_id="d")
    k.ok("v = counter('c')", cell_id="c")
    assert k.value("(v, w)") == "(1, 2)"
    assert len(_lines(workdir, "count.txt")) == 2

    assert "epoch 1 started" in k.ok("%durable fresh").stdout
    r = k.ok("v = counter('c')", cell_id="c")
    assert "replayed" not in r.stdout
    assert k.value("v") == "3"
    # The new results replay in the new epoch, once each cell has run in it.
    r = k.ok("v = counter('c')", cell_id="c")
    assert "1 step replayed" in r.stdout
    k.ok("w = counter('d')", cell_id="d")
    k.ok("w = counter('d')", cell_id="d")
    assert k.value("(v, w)") == "(3, 4)"
    assert len(_lines(workdir, "count.txt")) == 4
    k.close()

    # The epoch survives a restart: the new results replay, not the old ones.
    k = _start(start_kernel, workdir)
    k.ok(COUNTER, cell_id="def")
    k.ok("v = counter('c')", cell_id="c")
    k.ok("w = counter('d')", cell_id="d")
    assert k.value("(v, w)") == "(3, 4)"
    assert len(_lines(workdir, "count.txt")) == 4


def test_fresh_cell_magic_reruns_that_cell_then_replays_the_new_result(start_kernel, workdir):
    k = _start(start_kernel, workdir)
    k.ok(COUNTER, cell_id="def")
    k.ok("v = counter('c')", cell_id="c")
    k.ok("w = counter('d')", cell_id="d")
    assert k.value("(v, w)") == "(1, 2)"

    # %%durable fresh on the first line: only that cell's steps run again...
    r = k.ok("%%durable fresh\nv = counter('c')", cell_id="c")
    assert "replayed" not in r.stdout
    assert k.value("v") == "3"
    # ... and afterwards the plain cell replays the NEW result; other cells still replay.
    r = k.ok("v = counter('c')", cell_id="c")
    assert "1 step replayed" in r.stdout
    r = k.ok("w = counter('d')", cell_id="d")
    assert "1 step replayed" in r.stdout
    assert k.value("(v, w)") == "(3, 2)"
    assert len(_lines(workdir, "count.txt")) == 3
    k.close()

    k = _start(start_kernel, workdir)
    k.ok(COUNTER, cell_id="def")
    k.ok("v = counter('c')", cell_id="c")
    assert k.value("v") == "3"
    assert len(_lines(workdir, "count.txt")) == 3


# -- 8. async steps ----------------------------------------------------------------------

ASYNC = """
@dnb.step(retries=2, initial=0.01)
async def fetch(name):
    await asyncio.sleep(0.01)
    return (await asyncio.to_thread(call, URL, f"async/{name}"))["n"]

a = await fetch("x")
rest = await asyncio.gather(*(fetch(n) for n in ("p", "q", "r")))
print("got", a, rest)
"""


def test_async_steps_at_top_level_replay_after_restart(start_kernel, workdir, service):
    k = _start(start_kernel, workdir, service)
    configure(service, fail_next=1)  # the first request fails: async steps retry too
    r = k.ok(ASYNC, cell_id="async")
    assert "got 2 [1, 1, 1]" in r.stdout, str(r)
    before = stats(service)
    assert before["total"] == 5
    k.close()

    k = _start(start_kernel, workdir, service)
    r = k.ok(ASYNC, cell_id="async")
    assert "got 2 [1, 1, 1]" in r.stdout, str(r)
    assert "4 steps replayed" in r.stdout
    assert stats(service) == before


# -- 9. steps called from threads -------------------------------------------------------

THREADS = """
from concurrent.futures import ThreadPoolExecutor

@dnb.step
def square(i):
    with open(os.path.join(W, "threads.txt"), "a") as f:
        f.write(f"{i}\\n")
    time.sleep(0.005)
    return i * i

with ThreadPoolExecutor(8) as ex:
    out = list(ex.map(square, range(40)))
print("sum", sum(out), out == [i * i for i in range(40)])
"""


def test_steps_from_threads_run_once_and_replay_after_restart(start_kernel, workdir):
    k = _start(start_kernel, workdir)
    r = k.ok(THREADS, cell_id="threads")
    assert "sum 20540 True" in r.stdout
    lines = _lines(workdir, "threads.txt")
    assert sorted(map(int, lines)) == list(range(40))
    k.close()

    k = _start(start_kernel, workdir)
    r = k.ok(THREADS, cell_id="threads")
    assert "sum 20540 True" in r.stdout
    assert "40 steps replayed" in r.stdout
    assert len(_lines(workdir, "threads.txt")) == 40


# -- 10. journaled clock, uuid, random ---------------------------------------------------

CLOCK = """
t1 = dnb.now(); u = dnb.uuid4(); x = dnb.random(); t2 = dnb.now()
print(repr((t1.isoformat(), t2.isoformat(), str(u), x)))
"""


def test_now_uuid_random_same_after_restart(start_kernel, workdir):
    k = _start(start_kernel, workdir)
    first = _last_line(k.ok(CLOCK, cell_id="clock").stdout)
    other = _last_line(k.ok(CLOCK, cell_id="other-clock").stdout)
    assert first != other  # genuinely random and not constants
    assert k.value("type(t1).__name__, t1.tzinfo is not None, type(u).__name__") == (
        "('datetime', True, 'UUID')"
    )
    k.close()
    time.sleep(0.05)  # so that an un-journaled now() would differ

    k = _start(start_kernel, workdir)
    r = k.ok(CLOCK, cell_id="clock")
    assert _last_line(r.stdout) == first
    assert _last_line(k.ok(CLOCK, cell_id="other-clock").stdout) == other


# -- 11. durable sleep ----------------------------------------------------------------------

SLEEP = """
import time
with open(os.path.join(W, "sleeping"), "a") as f:
    f.write(f"{time.time()}\\n")
dnb.sleep(6)
with open(os.path.join(W, "woke"), "a") as f:
    f.write(f"{time.time()}\\n")
print("woke")
"""


def _times(path) -> list[float]:
    return [float(t) for t in path.read_text().split()] if path.exists() else []


def test_durable_sleep_waits_only_the_remainder_after_a_kill(start_kernel, workdir):
    """The wake-up time is the one recorded when the sleep began, however long the restart.

    Bounds, not durations: a sleep that started over would wake 6 s after the re-run
    began, past both the recorded deadline and the re-run's start by more than the 2 s
    allowed for scheduling; a sleep that forgot the deadline could wake before it.
    """
    sleeping, woke = workdir / "sleeping", workdir / "woke"
    k = _start(start_kernel, workdir)
    k.send(SLEEP, cell_id="sleep")
    deadline = time.monotonic() + 30
    while not sleeping.exists():
        assert time.monotonic() < deadline, "the sleep never started"
        time.sleep(0.01)
    time.sleep(2)
    k.kill()
    assert not woke.exists()
    began = _times(sleeping)[0]

    k = _start(start_kernel, workdir)
    r = k.ok(SLEEP, cell_id="sleep")
    assert "woke" in r.stdout
    rerun, wake = _times(sleeping)[1], _times(woke)[0]
    assert wake >= began + 6 - 0.05  # never before the recorded deadline
    assert wake < max(began + 6, rerun) + 2, (wake - began, rerun - began)

    r = k.ok(SLEEP, cell_id="sleep")  # past the deadline: no wait at all
    assert "woke" in r.stdout
    again, wake2 = _times(sleeping)[2], _times(woke)[1]
    assert wake2 - again < 2, wake2 - again


# -- 12. step_id --------------------------------------------------------------------------

CHARGE = """
@dnb.step(retries=2, initial=0.01)
def charge(amount):
    sid = dnb.step_id()
    with open(os.path.join(W, "ids.txt"), "a") as f:
        f.write(sid + "\\n")
    return call(URL, f"charge/{amount}", idempotency_key=sid)["token"]
"""


def test_step_id_stable_across_retries_and_restart(start_kernel, workdir, service):
    k = _start(start_kernel, workdir, service)
    k.ok(CHARGE, cell_id="def")
    out = k.ok(
        "try:\n    dnb.step_id()\nexcept dnb.DurableError as e:\n    print('outside', e)"
    ).stdout
    assert out.startswith("outside ") and "step" in out, out

    configure(service, down=True)
    r = k.run("tok = charge(5)", cell_id="pay")
    assert r.error and r.error["ename"] == "StepFailed", str(r)
    ids = _lines(workdir, "ids.txt")
    assert len(ids) == 3 and len(set(ids)) == 1, ids
    k.close()

    # After a restart the same call (it never completed) runs again with the same id.
    configure(service, down=False, fail_next=1)
    k = _start(start_kernel, workdir, service)
    k.ok(CHARGE, cell_id="def")
    k.ok("tok = charge(5)", cell_id="pay")
    ids = _lines(workdir, "ids.txt")
    assert len(ids) == 5 and len(set(ids)) == 1, ids
    assert k.value("tok") == repr(ids[0])  # the service received it as Idempotency-Key
    assert _requests(service, "charge/5") == 5

    # Another call is another step: another id.
    k.ok("tok6 = charge(6)", cell_id="pay6")
    assert k.value("tok6") != k.value("tok")
    assert len(set(_lines(workdir, "ids.txt"))) == 2


# -- 13. results that cannot be serialized ------------------------------------------------


def test_unserializable_result_is_returned_with_warning_and_runs_again(start_kernel, workdir):
    k = _start(start_kernel, workdir)
    k.ok(
        "@dnb.step\ndef numbers():\n    bump('gen.txt')\n    return (i * 10 for i in range(3))\n",
        cell_id="def",
    )
    code = "g = numbers()\nprint(type(g).__name__, list(g))"
    r = k.ok(code, cell_id="gen")
    assert "generator [0, 10, 20]" in r.stdout
    warnings = [line for line in r.stderr.splitlines() if "not durable" in line]
    assert len(warnings) == 1, r.stderr
    assert "numbers" in warnings[0]

    r = k.ok(code, cell_id="gen")
    assert "generator [0, 10, 20]" in r.stdout
    assert "replayed" not in r.stdout
    assert len(_lines(workdir, "gen.txt")) == 2


# -- 14. replay gives a fresh copy ---------------------------------------------------------


def test_replay_returns_a_fresh_copy_each_time(start_kernel, workdir):
    k = _start(start_kernel, workdir)
    k.ok(
        "@dnb.step\n"
        "def config():\n"
        "    bump('config.txt')\n"
        "    return {'hosts': ['a', 'b'], 'port': 80}\n"
        "@dnb.step\n"
        "def pickled():\n"
        "    bump('config.txt')\n"
        "    return {'hosts': {'a', 'b'}, 'pair': (1, 2)}\n",
        cell_id="def",
    )
    cell = "c = config(); p = pickled()"
    mutate = "c['hosts'].append('z'); c['port'] = 1; p['hosts'].add('z'); p['new'] = 1"
    k.ok(cell, cell_id="get")
    k.ok(mutate, cell_id="mutate")  # mutating what the running step returned
    for _ in range(2):
        k.ok(cell, cell_id="get")
        assert k.value("c") == "{'hosts': ['a', 'b'], 'port': 80}"
        assert k.value("p == {'hosts': {'a', 'b'}, 'pair': (1, 2)}") == "True"
        k.ok(mutate, cell_id="mutate")
    assert len(_lines(workdir, "config.txt")) == 2


# -- 15. without cell ids: the source hash, and the quiet replay line -----------------------

SRC = "r = work(1)\nprint('r', r)"


def test_without_cell_ids_source_hash_identifies_the_cell(start_kernel, workdir):
    k = _start(start_kernel, workdir)
    k.ok(WORK)
    r = k.ok(SRC)
    assert "r [1, 1]" in r.stdout
    assert "replayed" not in r.stdout

    r = k.ok(SRC)
    assert "r [1, 1]" in r.stdout
    lines = [line for line in r.stdout.splitlines() if "replayed" in line]
    assert len(lines) == 1, r.stdout
    assert lines[0].startswith("durable_nb: 1 step replayed from the journal")
    assert "%%durable fresh" in lines[0]

    r = k.ok("x = 1")
    assert "replayed" not in r.stdout
    r = k.ok("y = work(2)")  # steps ran, none replayed: no line
    assert "replayed" not in r.stdout
    assert len(_lines(workdir, "work.txt")) == 2

    r = k.ok(SRC + "  # another cell")  # another source is another cell
    assert "r [3, 1]" in r.stdout
    assert "replayed" not in r.stdout

    r = k.ok("%%durable fresh\n" + SRC)  # the same cell, run fresh
    assert "r [4, 1]" in r.stdout
    assert "replayed" not in r.stdout
    r = k.ok(SRC)
    assert "r [4, 1]" in r.stdout
    assert "1 step replayed" in r.stdout
    k.close()

    k = _start(start_kernel, workdir)
    k.ok(WORK)
    r = k.ok(SRC)
    assert "r [4, 1]" in r.stdout
    assert "1 step replayed" in r.stdout
    assert len(_lines(workdir, "work.txt")) == 4
    out = k.ok(
        "df = %durable sql SELECT count(DISTINCT cell_key) AS n, min(cell_key) AS k "
        "FROM steps WHERE name = 'work'\n"
        "print(int(df.n[0]), df.k[0][:4])"
    ).stdout
    assert out.strip() == "3 src:", out  # SRC, 'y = work(2)' and the commented SRC
