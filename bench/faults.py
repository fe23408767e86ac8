"""Fault campaign: real kernels, real SIGKILLs, damaged files, a full disk, two kernels.

Each trial runs cells whose steps append a line to a file at every real run, puts a
fault in front of the kernel or its journal, starts a new kernel and runs the same
cells again (same cell ids). Runs are counted from the files, values compared with
what the steps return, and the ``durable_nb:`` lines are read. See bench/README.md.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from kernels import KERNEL, NOTEBOOKS, Kernel, PortTaken, Result  # noqa: E402  (the tests' driver)

COLUMNS = ("trials", "lost", "beyond", "wrong", "silent", "failed_opens", "hangs")
HEADERS = ("trials", "journaled steps lost", "re-run beyond promise", "wrong values",
           "silent damage", "failed opens", "hangs")  # fmt: skip
#: Where a journal that is damaged or held cannot be opened, failed opens are expected
#: (the kernel must say so, and refuse the steps the journal may hold).
MAY_FAIL_OPEN = {"db-flip", "db-cut", "two-kernels"}
#: A map item counts as lost when it finished this long before the kill and ran again
#: (the promise is 50 ms; the rest absorbs scheduling on a busy machine).
MAP_SLACK = 0.5
CELL_TIMEOUT = 120.0


class Hang(Exception):
    """A kernel did not start, or a cell did not finish, in time."""


# -- the watchdog: a hang names its place ----------------------------------------------------

#: Harness-only: a ``sitecustomize`` put first on the kernels' PYTHONPATH. When the
#: harness sets DNB_FAULTS_STACKS, every kernel writes the Python stacks of all its
#: threads to ``<that>.<pid>`` on SIGUSR1 (faulthandler: works while a thread is stuck).
SITECUSTOMIZE = """
import os as _os
if _os.environ.get("DNB_FAULTS_STACKS"):
    import faulthandler as _fh, signal as _sig
    _dnb_stacks = open(f"{_os.environ['DNB_FAULTS_STACKS']}.{_os.getpid()}", "w")
    _fh.register(_sig.SIGUSR1, file=_dnb_stacks, all_threads=True)
"""
#: A trial that has not ended by then has its stacks dumped (harness and kernels).
TRIAL_DEADLINE = 8 * CELL_TIMEOUT


def children(pid: int) -> list[int]:
    """The living descendants of ``pid`` (from /proc)."""
    kids: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            kids[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def activity(pid: int) -> dict[str, tuple[float, str]]:
    """Per thread of ``pid``: seconds it has run or waited for a CPU, and its state now.

    From /proc (schedstat: time on a CPU, time runnable on a run queue). A thread that
    wants to work adds about a second a second, however busy the machine; one blocked on
    a lock or a sleep adds nothing.
    """
    out = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            ran, waited = (task / "schedstat").read_text().split()[:2]
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            continue
        out[task.name] = ((int(ran) + int(waited)) / 1e9, state)
    return out


def stalled(before: dict[str, tuple[float, str]], after: dict[str, tuple[float, str]],
            window: float) -> bool:  # fmt: skip
    """Whether a process made no progress over ``window`` seconds: a hang, not a slow machine.

    Progress: a thread that ran or waited for a CPU for a third of the window, or one
    waiting on the disk now (state D). A kernel starved by other work is slow, not hung.
    """
    if not after:  # gone
        return True
    if any(state == "D" for _, state in after.values()):
        return False
    grew = [t - before.get(tid, (0.0, ""))[0] for tid, (t, _) in after.items()]
    return max(grew, default=0.0) < window / 3


def dump_stacks(t: Trial, why: str) -> Path:
    """Write where every process of trial ``t`` is now, harness included; return the file.

    Per kernel: its Python stacks (faulthandler on SIGUSR1), ``py-spy dump --native``
    when py-spy is installed, and each thread's kernel wait channel and stack.
    """
    out = t.dir / "stacks.txt"
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    with open(out, "a") as f:
        f.write(f"== {why} at {time.strftime('%H:%M:%S')}\n== harness {os.getpid()}\n")
        f.flush()
        import faulthandler

        faulthandler.dump_traceback(file=f, all_threads=True)
        for pid in children(os.getpid()):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            f.write(f"\n== pid {pid}: {cmd[:200]}\n")
            busy = ", ".join(f"{tid} {s} {x:.1f}s" for tid, (x, s) in activity(pid).items())
            f.write(f"-- per thread: state, seconds run or runnable: {busy}\n")
            for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
                wchan = stack = ""
                try:
                    wchan = (task / "wchan").read_text()
                    stack = (task / "stack").read_text()
                except OSError:
                    pass
                f.write(f"-- thread {task.name} wchan={wchan}\n{stack}")
            stacks = Path(f"{t.stacks}.{pid}")
            if stacks.exists():
                try:
                    os.kill(pid, signal.SIGUSR1)
                except OSError:
                    pass
                time.sleep(1.0)
                f.write(f"-- faulthandler\n{stacks.read_text()}\n")
            if spy:
                proc = subprocess.run([spy, "dump", "--native", "--pid", str(pid)],
                                      capture_output=True, text=True, timeout=60)  # fmt: skip
                f.write(f"-- py-spy\n{proc.stdout}{proc.stderr}\n")
            f.flush()
    return out


class Watchdog:
    """Dumps the stacks of trial ``t`` if it has not ended ``after`` seconds from now."""

    def __init__(self, t: Trial, after: float = TRIAL_DEADLINE) -> None:
        self.done = threading.Event()
        self.fired: Path | None = None
        self.thread = threading.Thread(target=self._watch, args=(t, after), daemon=True)
        self.thread.start()

    def _watch(self, t: Trial, after: float) -> None:
        if not self.done.wait(after):
            self.fired = dump_stacks(t, f"trial not ended after {after:.0f} s")

    def stop(self) -> None:
        self.done.set()


class Skip(Exception):
    """This kind cannot run here (the reason is printed under the table)."""


@dataclass
class Tally:
    """The counts of one kind over its trials."""

    trials: int = 0
    lost: int = 0
    beyond: int = 0
    wrong: int = 0
    silent: int = 0
    failed_opens: int = 0
    hangs: int = 0
    errors: int = 0  # the harness failed (not a count of the product): printed, exit 2
    seconds: float = 0.0
    restarts: int = 0  # kernels whose TCP port was taken at start, started again (not hangs)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    def add(self, counts: dict[str, int]) -> None:
        for key, value in counts.items():
            setattr(self, key, getattr(self, key) + value)

    def must_be_zero(self, kind: str) -> list[str]:
        """The columns of ``kind`` that must be zero."""
        return [c for c in COLUMNS[1:] if not (c == "failed_opens" and kind in MAY_FAIL_OPEN)]

    def violations(self, kind: str) -> dict[str, int]:
        return {c: getattr(self, c) for c in self.must_be_zero(kind) if getattr(self, c)}


# -- cells run in the kernels --------------------------------------------------------------

HELPERS = """
import os, time
import durable_nb as dnb
from durable_nb import runtime as _dnb_rt

def _line(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)  # survives SIGKILL
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)

def _logsize():
    for name in ("nb.log", "nb.wal"):
        p = os.path.join({jdir!r}, name)
        if os.path.exists(p):
            return os.path.getsize(p)
    return -1

def _journaled():
    rt = getattr(_dnb_rt, "_current", None)
    return int(rt is not None and rt.journaling)

def _opened():
    # A kernel's first cell runs while its journal opens: the log is there once it is.
    rt = getattr(_dnb_rt, "_current", None)
    if rt is not None:
        rt.wait_open()
"""

STEPS = (
    HELPERS
    + """
def _value(i):
    return {value}

@dnb.step
def effect(i):
    _line({runs!r}, f"{{i}}\\n")
    time.sleep({sleep} * (i * 7919 % 13) / 13)
    return _value(i)

_opened()
_line({marks!r}, f"start {{_logsize()}}\\n")
vals = []
for i in range({start}, {start} + {n}):
    vals.append(effect(i))
    _line({marks!r}, f"{{i}} {{_journaled()}} {{_logsize()}}\\n")
bad = [i for i, v in zip(range({start}, {start} + {n}), vals) if v != _value(i)]
print("BAD", bad)
"""
)
#: Appended to hold the cell (and its records in the log: the snapshot after a cell folds).
HOLD = """
_line({marks!r}, "held\\n")
time.sleep(3600)
"""

MAP = (
    HELPERS
    + """
@dnb.step
def work(i):
    _line({runs!r}, f"{{i}}\\n")
    time.sleep(0.002 * (i * 7919 % 17))
    _line({ends!r}, f"{{i}} {{time.time()!r}}\\n")
    return i * 10

res = dnb.map(work, range({n}), max_workers=4, progress=False)
bad = [i for i, v in enumerate(res) if v != i * 10]
print("BAD", bad)
"""
)

VALUES = {
    "small": "i * 10",
    "big": "list(range(i, i + 200_000))",  # ~1.4 MB of JSON: a blob file
}


def counts(path: Path) -> collections.Counter:
    """How many times each step ran, from its effect file."""
    if not path.exists():
        return collections.Counter()
    return collections.Counter(int(s.split()[0]) for s in path.read_text().splitlines() if s)


def marks(path: Path) -> tuple[int, dict[int, tuple[bool, int]]]:
    """The log size when the cell started, and step -> (journaled, log size after it)."""
    start, out = -1, {}
    if path.exists():
        for line in path.read_text().splitlines():
            w = line.split()
            if w[0] == "start":
                start = int(w[1])
            elif len(w) == 3 and w[0].isdigit():
                out[int(w[0])] = (w[1] == "1", int(w[2]))
    return start, out


def bad_values(r: Result | None) -> int:
    """How many values the cell found different from what the step returns."""
    if r is None:
        return 0
    for line in r.stdout.splitlines():
        if line.startswith("BAD "):
            return len(eval(line[4:]))  # a printed list of ints
    return 0


# -- one trial -----------------------------------------------------------------------------

#: A reused kernel is replaced after this many opens (what one process accumulates stays small).
RECYCLE = 100


class Shared:
    """What the trials of one kind share, where sharing does not weaken them.

    Kernels that open each trial's journal anew (the extension unloaded, then loaded with
    the trial's notebook: the open path a kernel start runs), and journals built once
    (``template``) that each trial copies and damages in its own way. A kernel a fault
    must kill is never shared.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.kernels: dict[str, tuple[Trial, Kernel, int]] = {}
        self.templates: dict[str, Path] = {}

    def kernel(self, slot: str) -> Kernel:
        own, k, uses = self.kernels.get(slot, (None, None, RECYCLE))
        if k is None or uses >= RECYCLE or not k.km.is_alive():
            self.discard(slot)
            own = Trial(self.base, random.Random(0))
            k = own.start()
            own.run(k, "pass", "warm", listen=False)
            uses = 0
        self.kernels[slot] = (own, k, uses + 1)
        return k

    def discard(self, slot: str | None = None) -> None:
        """Stop the shared kernels (after a hang or an error they are not trusted again)."""
        for name in [slot] if slot else list(self.kernels):
            own, _, _ = self.kernels.pop(name, (None, None, 0))
            if own is not None:
                own.close()
                shutil.rmtree(own.dir, ignore_errors=True)


def copy_tree(src: Path, dest: Path) -> None:
    """Copy a trial's folder; blob files are hard-linked (``damage`` replaces, never edits)."""
    for p in src.rglob("*"):
        to = dest / p.relative_to(src)
        if p.is_dir():
            to.mkdir(parents=True, exist_ok=True)
        elif p.parent.name.endswith(".blobs"):
            os.link(p, to)
        else:
            shutil.copy2(p, to)


class Trial:
    """A fresh folder with a notebook path, the kernels started on it, what they said."""

    def __init__(self, base: Path, rng: random.Random, n: int = 0,
                 shared: Shared | None = None) -> None:  # fmt: skip
        self.dir = Path(tempfile.mkdtemp(dir=base, prefix="t-"))
        self.shared = shared
        self.rng = rng
        self.n = n  # the trial's number: kinds with variants take them in turn
        self.jdir = self.dir / ".durable"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "DURABLE_NB"))}
        env["JPY_SESSION_NAME"] = str(self.dir / "nb.ipynb")
        site = base / "site"  # the watchdog's sitecustomize (harness only)
        if not (site / "sitecustomize.py").exists():
            site.mkdir(exist_ok=True)
            (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        self.stacks = self.dir / "stacks"
        env["DNB_FAULTS_STACKS"] = str(self.stacks)
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(NOTEBOOKS), env.get("PYTHONPATH", "")])
        self.env = env
        self.kernels: list[Kernel] = []
        self.managers: list[KernelManager] = []
        self.mounts: list[Path] = []
        self.said: list[str] = []  # durable_nb lines and error texts, every kernel
        self.restarts = 0  # kernels whose TCP port was taken at start, started again
        self.starts = itertools.count()  # numbers the kernels' stderr files

    def use_folder(self, folder: Path) -> None:
        """Put the journal in ``folder`` (DURABLE_NB_DIR)."""
        self.jdir = folder
        self.env["DURABLE_NB_DIR"] = str(folder)

    def start(self) -> Kernel:
        """A new kernel, ready: ``Kernel`` (tests/kernels.py), patient while it works.

        A start whose TCP port another process took first (see ``Kernel.wait_ready``) is
        told by the kernel's stderr, started again on new ports and counted in
        ``restarts``. Any other kernel that stops making progress for ``CELL_TIMEOUT`` is a
        hang, its stacks dumped.
        """

        def log() -> Path:
            return self.dir / f"kernel-{next(self.starts)}.stderr"

        try:
            return Kernel(self.dir, self.env, KERNEL, tries=3, ready=self._ready, stderr=log)
        except PortTaken:
            raise Hang("kernel lost its TCP ports three times while starting") from None

    def _ready(self, k: Kernel) -> None:
        if k not in self.kernels:
            self.kernels.append(k)  # stopped with the trial, whatever happens
        patience = self.patience(k, "kernel start")
        while True:
            try:
                k.kc.wait_for_ready(timeout=CELL_TIMEOUT)
                return
            except RuntimeError as exc:
                if "Address already in use" in k.log.read_text(errors="replace"):
                    self.restarts += 1
                    raise PortTaken(str(exc)) from exc
                if not k.km.is_alive():
                    raise Hang(f"kernel died while starting: {exc}") from exc
                patience()

    def patience(self, k: Kernel, what: str, window: float = CELL_TIMEOUT) -> Callable[[], None]:
        """A check to call each time ``window`` s pass while waiting on ``k``.

        It raises ``Hang`` (stacks dumped) when ``k`` made no progress over that window
        (``stalled``): a kernel that works, or waits for a CPU, is waited for.
        """
        seen = activity(k.pid)

        def check() -> None:
            nonlocal seen
            now = activity(k.pid)
            if stalled(seen, now, window):
                said = f"{what} made no progress for {window:.0f} s"
                raise Hang(f"{said}; stacks in {dump_stacks(self, said)}")
            seen = now

        return check

    def reopen(self, slot: str = "opener") -> Kernel:
        """A kernel that has just opened this trial's journal (its messages are heard).

        Shared: the extension is unloaded and loaded again with this trial's notebook and
        journal folder, after ``%reset -f``; else a new kernel.
        """
        if self.shared is None:
            return self.start()
        k = self.shared.kernel(slot)
        self.run(k, "%unload_ext durable_nb", "unload", listen=False)
        jdir = self.env.get("DURABLE_NB_DIR")
        code = "\n".join([
            f"import os; os.chdir({str(self.dir)!r})",  # the last trial's folder is gone
            "%reset -f",
            "import os",
            f"os.environ['JPY_SESSION_NAME'] = {self.env['JPY_SESSION_NAME']!r}",
            f"os.environ['DURABLE_NB_DIR'] = {jdir!r}" if jdir
            else "os.environ.pop('DURABLE_NB_DIR', None)",
            f"os.chdir({str(self.dir)!r})",
            "%load_ext durable_nb",
        ])  # fmt: skip
        r = self.run(k, code, "load")
        if r.error:
            raise RuntimeError("the shared kernel could not load the extension: "
                               f"{r.error['ename']}: {r.error['evalue']}")  # fmt: skip
        return k

    def template(self, name: str, build) -> None:
        """Fill this trial's folder with what ``build(trial)`` makes, built once per kind."""
        sh = self.shared
        if sh is not None and name in sh.templates:
            copy_tree(sh.templates[name], self.dir)
            return
        build(self)
        if sh is not None:
            sh.templates[name] = Path(tempfile.mkdtemp(dir=sh.base, prefix=f"template-{name}-"))
            copy_tree(self.dir, sh.templates[name])

    def start_nowait(self) -> KernelManager:
        """Start a kernel without waiting for it (to kill it while it opens the journal)."""
        km = KernelManager(kernel_name=KERNEL)
        km.start_kernel(cwd=str(self.dir), env=self.env)
        self.managers.append(km)
        return km

    def run(self, k: Kernel, code: str, cell_id: str, timeout: float = CELL_TIMEOUT,
            listen: bool = True) -> Result:  # fmt: skip
        r = self.wait(k, k.send(code, cell_id), timeout)
        if listen:
            self.hear(r)
        return r

    def wait(self, k: Kernel, msg_id: str, timeout: float) -> Result:
        """``Kernel.wait``, but a hang is a kernel that makes no progress for ``timeout``."""
        try:
            return k.wait(msg_id, timeout, self.patience(k, "cell", timeout), timeout)
        except queue.Empty:
            raise Hang(f"no execute_reply in {timeout:.0f} s after the kernel went idle") from None

    def hear(self, r: Result) -> None:
        text = r.stdout + "\n" + r.stderr
        self.said += [s for s in text.splitlines() if s.startswith("durable_nb:")]
        if r.error:
            self.said.append(f"{r.error['ename']}: {r.error['evalue']}")

    def reported(self, since: int = 0) -> bool:
        """Whether a message since ``since`` names the journal's folder or its files."""
        return any(str(self.jdir) in s for s in self.said[since:])

    def steps(self, k: Kernel, cell: str, n: int, value: str = "small", start: int = 0,
              sleep: float = 0.0, name: str = "k", hold: bool = False) -> str:  # fmt: skip
        """The step loop cell for kernel ``k`` (its marks go to a file of its own).

        ``hold``: the cell then sleeps, so that its records stay in the log until a kill.
        """
        marks = str(self.dir / f"marks-{name}-{cell}.txt")
        code = STEPS.format(jdir=str(self.jdir), runs=str(self.dir / "runs.txt"), marks=marks,
                            n=n, start=start, value=VALUES[value], sleep=sleep)  # fmt: skip
        return code + HOLD.format(marks=marks) if hold else code

    def held(self, k: Kernel, cell: str, n: int, name: str, kill: bool = True) -> None:
        """Run the steps of a holding cell, then SIGKILL ``k``: the log keeps every record."""
        marks = self.dir / f"marks-{name}-{cell}.txt"
        k.send(self.steps(k, cell, n, name=name, hold=True), cell)
        mark, patience = time.monotonic(), self.patience(k, f"cell {cell}")
        while not (marks.exists() and "held" in marks.read_text()):
            if time.monotonic() - mark > CELL_TIMEOUT:
                patience()
                mark = time.monotonic()
            time.sleep(0.05)
        if kill:
            self.kill(k)

    def status(self, k: Kernel) -> str:
        r = self.run(k, "%durable status", "status", listen=False)  # asked, not told
        return r.stdout + (r.error["evalue"] if r.error else "")

    def opened(self, k: Kernel) -> bool:
        """Whether ``k`` has a journal open (the extension loaded, and journaling)."""
        s = self.status(k)
        ok = s.startswith("durable_nb:") and "not journaling" not in s
        if not ok:  # a status saying why it does not journal tells (not one that says it does)
            self.said += [line for line in s.splitlines() if line.startswith("durable_nb:")]
        return ok

    def kill(self, k: Kernel) -> float:
        """SIGKILL ``k``; returns when it was sent."""
        when = time.time()
        k.kill()
        return when

    def mount(self, name: str, options: str) -> Path:
        where = self.dir / name
        where.mkdir()
        if os.geteuid() != 0:
            raise Skip("needs root to mount a small tmpfs")
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode:
            raise Skip(f"cannot mount a tmpfs ({proc.stderr.strip()})")
        self.mounts.append(where)
        return where

    def close(self) -> None:
        for k in self.kernels:
            try:
                if k.km.is_alive():
                    k.kill()
                else:
                    k.close(now=True)
            except Exception:
                pass
        for km in self.managers:
            try:
                km.shutdown_kernel(now=True)
            except Exception:
                pass
        for where in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def judge(t: Trial, before: collections.Counter, journaled: set[int], allowed: set[int],
          inflight: int, r: Result | None, *, damage: bool, since: int,
          opened: bool = True) -> dict[str, int]:  # fmt: skip
    """Counts of one trial from the runs before and after the fault.

    ``journaled``: steps recorded before the fault; ``allowed``: steps whose records the
    fault damaged (they may run again, if said); ``inflight``: steps not yet recorded
    that may run again (the at-least-once promise: 1 per kill of a loop).
    """
    after = counts(t.dir / "runs.txt")
    again = {i: after[i] - before[i] for i in after if after[i] > before[i] and before[i]}
    lost = len({i for i in again if i in journaled} - allowed)
    unrecorded = {i for i in again if i not in journaled and i not in allowed}
    beyond = max(0, len(unrecorded) - inflight) + sum(max(0, n - 1) for n in again.values())
    beyond += sum(max(0, after[i] - 1) for i in after if not before[i])  # ran twice anew
    wrong = bad_values(r)
    failed = int(not opened)
    effect = lost + beyond + wrong + failed + (len(again) if damage else 0)
    silent = int(effect > 0 and not t.reported(since))
    return dict(lost=lost, beyond=beyond, wrong=wrong, silent=silent, failed_opens=failed)


def journaled_steps(t: Trial, name: str, journaled: bool = True) -> set[int]:
    """The steps the cell ``name`` marked as journaled (or, False, as run un-journaled)."""
    return {i for i, (j, _) in marks(t.dir / f"marks-{name}.txt")[1].items() if j == journaled}


# -- the kinds -------------------------------------------------------------------------------


def kill_loop(t: Trial) -> dict[str, int]:
    """SIGKILL at a random point of a loop of 120 steps (~0.4 s)."""
    a = t.start()
    t.run(a, "pass", "warm")
    a.send(t.steps(a, "loop", 120, sleep=0.006, name="a"), "loop")
    time.sleep(t.rng.uniform(0.0, 1.2))
    t.kill(a)
    before, journaled = counts(t.dir / "runs.txt"), journaled_steps(t, "a-loop")
    since = len(t.said)
    b = t.reopen()
    r = t.run(b, t.steps(b, "loop", 120, name="b"), "loop")
    return judge(t, before, journaled, set(), 1, r, damage=False, since=since,
                 opened=t.opened(b))  # fmt: skip


def kill_map(t: Trial) -> dict[str, int]:
    """SIGKILL at a random point of a ``dnb.map`` of 300 items on 4 threads."""
    ends = t.dir / "ends.txt"
    code = MAP.format(jdir=str(t.jdir), runs=str(t.dir / "runs.txt"), ends=str(ends), n=300)
    a = t.start()
    t.run(a, "pass", "warm")
    a.send(code, "map")
    time.sleep(t.rng.uniform(0.0, 1.5))
    killed = t.kill(a)
    before = counts(t.dir / "runs.txt")
    ended = {}
    if ends.exists():
        for line in ends.read_text().splitlines():
            w = line.split()
            if len(w) == 2:
                ended[int(w[0])] = float(w[1])
    journaled = {i for i, at in ended.items() if at < killed - MAP_SLACK}
    # Items that finished within the slack, or were running, may run again.
    maybe = {i for i in before if i not in journaled}
    since = len(t.said)
    b = t.reopen()
    r = t.run(b, code, "map")
    return judge(t, before, journaled, set(), len(maybe), r, damage=False, since=since,
                 opened=t.opened(b))  # fmt: skip


SNAP_INIT = """
import numpy as np
arr = np.zeros({n}, dtype=np.int64)
hist, v = [], 0
"""
SNAP_CELL = "arr[{a}:{b}] = {v}; hist.append(({a}, {b}, {v})); v = {v}"
SNAP_CHECK = """
exp = np.zeros({n}, dtype=np.int64)
for a_, b_, v_ in hist:
    exp[a_:b_] = v_
print("STATE", v, len(hist), bool((exp == arr).all()))
"""


def kill_snapshot(t: Trial, n: int = 5_000_000) -> dict[str, int]:
    """SIGKILL during the snapshot after a cell that changed part of a 40 MB array."""
    a = t.start()
    t.run(a, SNAP_INIT.format(n=n), "init")
    spans = []
    for v in (1, 2, 3):
        lo = t.rng.randrange(n)
        spans.append((lo, t.rng.randrange(lo + 1, n + 1), v))
    t0 = time.monotonic()
    t.run(a, SNAP_CELL.format(a=spans[0][0], b=spans[0][1], v=1), "c1")
    t.run(a, SNAP_CELL.format(a=spans[1][0], b=spans[1][1], v=2), "c2")
    took = (time.monotonic() - t0) / 2
    a.send(SNAP_CELL.format(a=spans[2][0], b=spans[2][1], v=3), "c3")
    time.sleep(t.rng.uniform(0.0, took * 1.3))
    t.kill(a)
    since = len(t.said)
    b = t.reopen()
    t.run(b, "%durable restore", "restore")
    r = t.run(b, SNAP_CHECK.format(n=n), "check")
    out = dict(lost=0, wrong=0, failed_opens=0)
    state = next((s.split() for s in r.stdout.splitlines() if s.startswith("STATE")), None)
    if state is None:
        out["failed_opens"] = 1
    else:
        v, count, same = int(state[1]), int(state[2]), state[3] == "True"
        out["lost"] = int(v < 2)
        out["wrong"] = int(not same or count != v)
    out["silent"] = int(any(out.values()) and not t.reported(since))
    return out


def kill_fold(t: Trial) -> dict[str, int]:
    """SIGKILL around the fold: during close, during the fold at open, or in passing (in turn)."""
    where = ("close", "open", "passing")[t.n % 3]
    a = t.start()
    t.run(a, "pass", "warm")
    inflight = 0
    if where == "passing":  # the log is folded when it reaches 4096 records
        a.send(t.steps(a, "loop", 4300, name="a"), "loop")
        time.sleep(t.rng.uniform(0.3, 4.0))
        t.kill(a)
        inflight = 1
    else:  # the steps' records wait in the log (a held cell), then the fold is cut short
        t.held(a, "loop", t.rng.randrange(300, 3000), "a", kill=False)
        if where == "close":
            a.kc.shutdown()
            time.sleep(t.rng.uniform(0.0, 0.6))
            t.kill(a)
        else:
            t.kill(a)
            km = t.start_nowait()
            time.sleep(t.rng.uniform(0.2, 3.0))
            if km.is_alive():
                os.kill(km.provisioner.pid, 9)
            km.cleanup_resources()
    before, journaled = counts(t.dir / "runs.txt"), journaled_steps(t, "a-loop")
    n = max(before, default=-1) + 1
    since = len(t.said)
    b = t.reopen()
    r = t.run(b, t.steps(b, "loop", n, name="b"), "loop")
    return judge(t, before, journaled, set(), inflight, r, damage=False, since=since,
                 opened=t.opened(b))  # fmt: skip


def _held_loop(t: Trial) -> None:
    t.held(t.start(), "loop", 120, "a")  # killed: the log keeps its 120 step records


def _log_damage(t: Trial, cut: bool) -> dict[str, int]:
    """Damage the unfolded log of 120 steps: one flipped bit, or bytes cut out of it."""
    t.template("log", _held_loop)
    log = next((t.jdir / n for n in ("nb.log", "nb.wal") if (t.jdir / n).exists()), None)
    start, marked = marks(t.dir / "marks-a-loop.txt")
    if log is None or start < 0:
        raise RuntimeError("the killed kernel left no log")
    spans, prev = {}, start
    for i in sorted(marked):  # step i's record is the bytes (prev, end]
        spans[i], prev = (prev, marked[i][1]), marked[i][1]
    data = bytearray(log.read_bytes())
    # Inside the step records. A cut stops before the last record: a record cut short
    # at the end of the log is what a crash during its append leaves (a torn tail).
    last = spans[max(spans)][0]
    lo = t.rng.randrange(start, last if cut else prev)
    hi = lo + 1
    if cut:
        hi = min(last, lo + t.rng.randrange(1, 600))
        del data[lo:hi]
    else:
        data[lo] ^= 1 << t.rng.randrange(8)
    log.write_bytes(bytes(data))
    allowed = {i for i, (s, e) in spans.items() if s < hi and lo < e}
    before = counts(t.dir / "runs.txt")
    journaled = {i for i, (j, _) in marked.items() if j}
    since = len(t.said)
    b = t.reopen()
    r = t.run(b, t.steps(b, "loop", 120, name="b"), "loop")
    return judge(t, before, journaled, allowed, 0, r, damage=True, since=since,
                 opened=t.opened(b))  # fmt: skip


def log_flip(t: Trial) -> dict[str, int]:
    return _log_damage(t, cut=False)


def log_cut(t: Trial) -> dict[str, int]:
    return _log_damage(t, cut=True)


def damage(t: Trial, path: Path, cut: bool) -> None:
    """Flip one random bit of ``path``, or cut its tail at a random point."""
    data = bytearray(path.read_bytes())
    if cut:
        del data[t.rng.randrange(len(data)) :]
    else:
        data[t.rng.randrange(len(data))] ^= 1 << t.rng.randrange(8)
    mode = path.stat().st_mode
    path.unlink()  # a new file: a hard link to the kind's built journal is left as it was
    path.write_bytes(bytes(data))
    path.chmod(mode)


def _closed_journal(t: Trial) -> None:
    a = t.start()
    t.run(a, t.steps(a, "loop", 150, name="a"), "loop")
    t.run(a, "x = list(range(50_000))", "var")
    a.close()  # folds the log into the .duckdb


def _db_damage(t: Trial, cut: bool) -> dict[str, int]:
    """Damage the .duckdb of a cleanly closed journal: one flipped bit, or its tail cut."""
    t.template("db", _closed_journal)
    damage(t, t.jdir / "nb.duckdb", cut)
    before, journaled = counts(t.dir / "runs.txt"), journaled_steps(t, "a-loop")
    since = len(t.said)
    b = t.reopen()
    r = t.run(b, t.steps(b, "loop", 150, name="b"), "loop")
    t.run(b, "y = 1", "later")  # a cell without steps, and a snapshot
    return judge(t, before, journaled, set(), 0, r, damage=True, since=since,
                 opened=t.opened(b))  # fmt: skip


def db_flip(t: Trial) -> dict[str, int]:
    return _db_damage(t, cut=False)


def db_cut(t: Trial) -> dict[str, int]:
    return _db_damage(t, cut=True)


BLOB_CHECK = """
import numpy as np
print("ARR", bool((arr == np.arange(3_000_000) * 7).all()) if "arr" in dir() else None)
print("VALS", vals == [list(range(i, i + 200_000)) for i in range(4)] if "vals" in dir() else None)
"""


def _blobs_journal(t: Trial) -> None:
    a = t.start()
    t.run(a, t.steps(a, "loop", 4, value="big", name="a"), "loop")
    t.run(a, "import numpy as np; arr = np.arange(3_000_000) * 7", "arr")
    a.close()


def _blob_damage(t: Trial, cut: bool) -> dict[str, int]:
    """Damage one blob file: a step result over 1 MB, or a chunk of a 24 MB array."""
    t.template("blob", _blobs_journal)
    folder = t.jdir / "nb.blobs"
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    damage(t, t.rng.choice(files), cut)
    before, journaled = counts(t.dir / "runs.txt"), journaled_steps(t, "a-loop")
    since = len(t.said)
    b = t.reopen()
    t.run(b, "%durable restore", "restore")
    r_arr = t.run(b, BLOB_CHECK, "check")
    r = t.run(b, t.steps(b, "loop", 4, value="big", name="b"), "loop")
    # At most the step whose result was damaged may run again (and must be said).
    out = judge(t, before, journaled, set(journaled), 0, r, damage=True, since=since,
                opened=t.opened(b))  # fmt: skip
    again = sum(1 for i, n in counts(t.dir / "runs.txt").items() if n > before[i])
    out["lost"] += max(0, again - 1)
    arr_bad = "ARR False" in r_arr.stdout or "VALS False" in r_arr.stdout
    out["wrong"] += int(arr_bad)
    if arr_bad and not t.reported(since):
        out["silent"] = 1
    if r.error or r_arr.error:
        out["failed_opens"] = 1
        out["silent"] = max(out["silent"], int(not t.reported(since)))
    return out


def blob_flip(t: Trial) -> dict[str, int]:
    return _blob_damage(t, cut=False)


def blob_cut(t: Trial) -> dict[str, int]:
    return _blob_damage(t, cut=True)


SNAP_BIG = "import numpy as np; big = np.random.default_rng({seed}).random({n})"


def full_disk(t: Trial) -> dict[str, int]:
    """The disk fills up mid-session (a 16 MB tmpfs; a filler leaves < 8 KB or < 6 MB free)."""
    disk = t.mount("disk", "size=16m")
    t.use_folder(disk / "journal")
    filler = disk / "filler"
    free = t.rng.randrange(0, 8192) if t.n % 2 == 0 else t.rng.randrange(8192, 6 << 20)
    with open(filler, "wb") as f:  # fill the disk but ``free`` bytes
        try:
            f.write(b"\0" * ((16 << 20) - free))
        except OSError:
            pass
    a = t.start()
    t.run(a, t.steps(a, "s1", 20, name="a"), "s1")
    t.run(a, t.steps(a, "s2", 3, value="big", start=100, name="a"), "s2")
    t.run(a, SNAP_BIG.format(seed=t.rng.randrange(1000), n=t.rng.randrange(1, 1 << 20)), "snap")
    t.run(a, t.steps(a, "s3", 20, start=200, name="a"), "s3")
    full = not t.opened(a)
    if t.rng.random() < 0.5:
        a.close()
    else:
        t.kill(a)
    said_a = t.reported()
    filler.unlink()  # space is back
    before = counts(t.dir / "runs.txt")
    journaled = set().union(*(journaled_steps(t, f"a-{c}") for c in ("s1", "s2", "s3")))
    # Steps that ran after durable_nb stepped aside (and said so) may run again.
    unjournaled = set().union(*(journaled_steps(t, f"a-{c}", False) for c in ("s1", "s2", "s3")))
    b = t.start()  # real kernels here: the campaign's one hang was in this kind
    since = len(t.said)
    out = collections.Counter()
    specs = (("s1", 20, "small", 0), ("s2", 3, "big", 100), ("s3", 20, "small", 200))
    for cell, n, value, start in specs:
        r = t.run(b, t.steps(b, cell, n, value=value, start=start, name="b"), cell)
        out.update(judge(t, before, journaled, unjournaled, 0, r, damage=False, since=since))
        before = counts(t.dir / "runs.txt")  # count each cell's re-runs once
    out["failed_opens"] = int(not t.opened(b))
    out["silent"] = int(bool(full and not said_a) or bool(any(out.values()) and not
                        t.reported(since)))  # fmt: skip
    return dict(out)


def _journal_in_j(t: Trial) -> None:
    t.use_folder(t.dir / "j")
    a = t.start()
    t.run(a, t.steps(a, "loop", 100, name="a"), "loop")
    a.close()


def read_only(t: Trial) -> dict[str, int]:
    """The journal's folder becomes read-only between two kernels."""
    folder = t.mount("ro", "size=64m")
    t.template("ro", _journal_in_j)
    copy_tree(t.dir / "j", folder)
    t.use_folder(folder)
    proc = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True)
    if proc.returncode:
        raise Skip(f"cannot remount read-only ({proc.stderr.decode().strip()})")
    before, journaled = counts(t.dir / "runs.txt"), journaled_steps(t, "a-loop")
    since = len(t.said)
    b = t.reopen()
    r = t.run(b, t.steps(b, "loop", 100, name="b"), "loop")
    out = judge(t, before, journaled, set(), 0, r, damage=False, since=since,
                opened=t.opened(b))  # fmt: skip
    r = t.run(b, t.steps(b, "new", 3, start=500, name="b"), "new")  # not journaled: said
    out["wrong"] += bad_values(r)
    out["silent"] = max(out["silent"], int(not t.reported(since)))
    return out


def two_kernels(t: Trial) -> dict[str, int]:
    """A second kernel on a notebook whose journal a live kernel holds."""
    a = t.reopen("holder")
    t.run(a, t.steps(a, "loop", 100, name="a"), "loop")
    before, journaled = counts(t.dir / "runs.txt"), journaled_steps(t, "a-loop")
    since = len(t.said)
    b = t.reopen()
    plain = t.run(b, "x = 41 + 1; print(x)", "plain")
    r = t.run(b, t.steps(b, "loop", 100, name="b"), "loop")
    out = judge(t, before, journaled, set(), 0, r, damage=True, since=since,
                opened=t.opened(b))  # fmt: skip
    if plain.error or "42" not in plain.stdout:  # a cell without steps runs as usual
        out["wrong"] += 1
    before = counts(t.dir / "runs.txt")
    r = t.run(a, t.steps(a, "loop", 100, name="a2"), "loop")  # the holder replays on
    again = sum(1 for i, n in counts(t.dir / "runs.txt").items() if n > before[i])
    out["lost"] += again
    out["wrong"] += bad_values(r)
    return out


KINDS = {
    "kill-loop": kill_loop,
    "kill-map": kill_map,
    "kill-snapshot": kill_snapshot,
    "kill-fold": kill_fold,
    "log-flip": log_flip,
    "log-cut": log_cut,
    "db-flip": db_flip,
    "db-cut": db_cut,
    "blob-flip": blob_flip,
    "blob-cut": blob_cut,
    "full-disk": full_disk,
    "read-only": read_only,
    "two-kernels": two_kernels,
}


class KindRun:
    """The trials of one kind, one at a time (so that kinds can take turns)."""

    def __init__(self, kind: str, seed: int, base: Path, keep: bool = False,
                 verbose: bool = False, shared: Shared | None = None) -> None:  # fmt: skip
        self.kind, self.seed, self.base, self.keep, self.verbose = kind, seed, base, keep, verbose
        self.tally = Tally()
        self.own = shared is None  # else the caller's, kept for the next kinds
        self.shared = Shared(base) if shared is None else shared

    def trial(self, n: int) -> bool:
        """Run trial ``n`` in a fresh folder; False when the kind cannot run here."""
        kind, tally, shared = self.kind, self.tally, self.shared
        t = Trial(self.base, random.Random(f"{self.seed}:{kind}:{n}"), n, shared)
        dog, t0 = Watchdog(t), time.monotonic()
        try:
            got = KINDS[kind](t)
        except Skip as exc:
            tally.skipped = str(exc)
            return False
        except Hang as exc:
            got = {"hangs": 1}
            tally.notes.append(f"trial {n}: {exc}")
            shared.discard()
        except Exception as exc:  # the harness's own failure: said, and the campaign goes on
            got = None
            shared.discard()
            tally.errors += 1
            tally.notes.append(f"trial {n}: harness error {exc!r}; {t.dir}")
            (t.dir / "error.txt").write_text(traceback.format_exc())
        finally:
            dog.stop()
            t.close()
            tally.seconds += time.monotonic() - t0
            tally.restarts += t.restarts
        if got is None:  # not a trial: its folder is kept for a look
            return True
        if got.get("hangs") or dog.fired:
            kept = Path(tempfile.gettempdir()) / f"dnb-faults-stacks-{kind}-{self.seed}-{n}.txt"
            if (t.dir / "stacks.txt").exists():
                shutil.copy(t.dir / "stacks.txt", kept)
                tally.notes.append(f"trial {n}: stacks in {kept}")
        tally.trials += 1
        tally.add(got)
        if any(got.get(c) for c in tally.must_be_zero(kind)):
            tally.notes.append(f"trial {n}: {got}; {t.dir}; said: {t.said[-3:]}")
        if self.verbose:
            print(f"{kind} {n}: {got}", file=sys.stderr, flush=True)
        if not self.keep:
            shutil.rmtree(t.dir, ignore_errors=True)
        return True

    def close(self) -> None:
        if self.own:
            self.shared.discard()


def run_kind(kind: str, trials: int, seed: int = 0, base: Path | None = None, keep: bool = False,
             verbose: bool = False, shared: Shared | None = None) -> Tally:  # fmt: skip
    """Run ``trials`` trials of ``kind``; each in a fresh folder under ``base``.

    ``shared``: kernels and built journals to share with other kinds (the caller discards
    it); by default the kind's own.
    """
    base = Path(base or tempfile.mkdtemp(prefix="dnb-faults-"))
    run = KindRun(kind, seed, base, keep, verbose, shared)
    try:
        for n in range(trials):
            if not run.trial(n):
                break
    finally:
        run.close()
    return run.tally


def table(results: dict[str, Tally]) -> str:
    """The one table: a column per count, ``!`` beside a count that must be zero."""
    width = max(map(len, results), default=4) + 2
    lines = ["kind".ljust(width) + "  ".join(HEADERS)]
    for kind, tally in results.items():
        if tally.skipped:
            lines.append(kind.ljust(width) + f"skipped: {tally.skipped}")
            continue
        bad = tally.violations(kind)
        cells = []
        for col, head in zip(COLUMNS, HEADERS, strict=True):
            mark = "!" if col in bad else ("*" if col == "failed_opens" and kind in
                                            MAY_FAIL_OPEN else "")  # fmt: skip
            cells.append(f"{getattr(tally, col)}{mark}".rjust(len(head)))
        lines.append(kind.ljust(width) + "  ".join(cells))
    lines.append("! must be 0.  * may be > 0: the journal is damaged or held; the kernel "
                 "must say so and refuse journaled steps.")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=2, help="trials per kind (default 2)")
    p.add_argument("--kinds", default=",".join(KINDS), help="comma list of kinds")
    p.add_argument("--seed", type=int, default=0, help="seed of the random fault points")
    p.add_argument("--tmp", default=None, help="parent folder for the trial folders")
    p.add_argument("--keep", action="store_true", help="keep the trial folders")
    p.add_argument("-v", "--verbose", action="store_true", help="a line per trial")
    p.add_argument("--kernel-stderr", action="store_true", help="show the kernels' stderr")
    p.add_argument("--progress", default=None,
                   help="rewrite the table into this file after every trial")  # fmt: skip
    args = p.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a stop prints the table too
    if not args.kernel_stderr:  # kernels inherit fd 2: send theirs to /dev/null, keep ours
        sys.stderr = os.fdopen(os.dup(2), "w")
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        p.error(f"unknown kinds {unknown}; choose from {', '.join(KINDS)}")
    base = Path(tempfile.mkdtemp(prefix="dnb-faults-", dir=args.tmp))
    t0 = time.monotonic()
    # The kinds take turns, trial by trial: a campaign stopped early has them all alike.
    runs = {kind: KindRun(kind, args.seed, base, args.keep, args.verbose) for kind in kinds}
    results = {kind: run.tally for kind, run in runs.items()}
    try:
        for n in range(args.trials):
            for kind, run in list(runs.items()):
                if not run.trial(n):
                    runs.pop(kind).close()
                if args.progress:
                    Path(args.progress).write_text(
                        f"{table(results)}\n{time.monotonic() - t0:.0f} s\n"
                    )
    except KeyboardInterrupt:
        print("interrupted; the table holds the trials that finished", file=sys.stderr)
    finally:
        for run in runs.values():
            run.close()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(table(results))
    print(f"{sum(t.trials for t in results.values())} trials in {time.monotonic() - t0:.0f} s")
    for kind, tally in results.items():
        if tally.trials:
            print(f"  {kind}: {tally.seconds / tally.trials:.1f} s per trial"
                  + (f"; {tally.errors} harness errors" if tally.errors else "")
                  + (f"; {tally.restarts} kernels lost a TCP port at start, started again"
                     if tally.restarts else ""))  # fmt: skip
        for note in tally.notes[:10]:
            print(f"  {kind}: {note}")
    if any(t.errors for t in results.values()):
        return 2
    return int(any(t.violations(k) for k, t in results.items()))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
