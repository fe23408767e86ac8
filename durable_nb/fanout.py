"""``dnb.map``: one step over many items, on threads, processes or a Dask cluster.

Workers run each item's retries; only the calling thread journals, in group commits.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, ThreadPoolExecutor
from typing import Any

import xxhash

from . import codec, runtime
from .errors import DurableError, StepFailed
from .steps import _CURRENT, Attempts, _Call, _repr, _Step

__all__ = ["FLUSH_ITEMS", "FLUSH_SECONDS", "Results", "map"]

#: Durability bound: a result the kernel has received is fdatasync'd to the journal's
#: log at most this many seconds later ...
FLUSH_SECONDS = 0.05
#: ... or once this many results are waiting, whichever comes first (group commit).
FLUSH_ITEMS = 512
#: After Ctrl-C, how long the items already running are waited for (and journaled).
DRAIN_SECONDS = 30.0
#: When results trickle in, they are synced as soon as none is waiting, but not more
#: often than this: each fdatasync costs ~0.1 ms of the thread that journals.
_IDLE_SYNC_GAP = 0.005
#: Items submitted between two looks at the finished ones, so that journaling goes on
#: (and the bound holds) while a long list is still being submitted.
_SUBMIT_CHUNK = 256
#: Dask: finished futures are looked for and gathered once per this many seconds ...
_GATHER_WINDOW = 0.02
#: ... among the first this many still waiting (all of them twice a second).
_SCAN = 1024
#: Dask future states that are not an outcome yet ("lost" data is computed again).
_WAITING = frozenset({"pending", "lost"})

# -- on the workers -------------------------------------------------------------


def _run_item(fn: Callable[..., Any], name: str, policy: Any, identity: str, item: Any) -> tuple:
    """Run one item's attempts where the executor puts it: ``(ok, value or error, log)``.

    Module-level so that processes and Dask workers can unpickle it. It never
    touches the journal: the kernel journals what it returns. An ``async def`` step
    runs in an event loop of its own.
    """
    step = getattr(fn, "_dnb_step", None)  # a wrapper sent by reference: run its body
    body = fn if step is None else step.fn
    attempts = Attempts(name, policy, identity)
    try:
        if inspect.iscoroutinefunction(body):
            value = asyncio.run(attempts.run_async(body, (item,), {}))
        else:
            value = attempts.run_sync(body, (item,), {})
    except Exception as exc:
        return False, exc, attempts.log
    return True, value, attempts.log


# -- the result -------------------------------------------------------------------


class Results(list):
    """What :func:`map` returns: a list of results, plus the failures when collected.

    With ``ordered=True`` the list holds one result per item, in input order; a
    failed item's slot holds its exception (as ``asyncio.gather(...,
    return_exceptions=True)`` does). With ``ordered=False`` it holds ``(item, result)``
    pairs in the order they completed (replayed ones first), failures left out.

    Attributes
    ----------
    errors : list of (item, exception)
        Items that failed on every attempt, with their final error (``errors="collect"``).
    """

    errors: list[tuple[Any, BaseException]]
    # Class defaults for results unpickled from a snapshot (no __init__ then).
    _fanout: _Fanout | None = None
    _failed: list[_Work] | tuple = ()

    def __init__(self, values: Iterable[Any] = ()) -> None:
        super().__init__(values)
        self.errors = []
        self._failed = []

    def retry(self) -> Results:
        """Run the failed items again, in one call, and fill their results in.

        The items keep their identities, so once they succeed, re-running the cell
        replays them. Items that fail again stay in :attr:`errors`. Returns ``self``.
        """
        if not self.errors:
            return self
        if self._fanout is None or not self._failed:
            raise DurableError(
                "these results were restored from a snapshot, so their failed items can no "
                "longer be retried from here; re-run the cell that called dnb.map instead."
            )
        earlier = list(zip(self._failed, self.errors, strict=True))
        self._failed, self.errors = [], []
        for work, _ in earlier:
            work.settled = False
            work.call.attempts = Attempts(work.call.step.name, work.call.step.policy,
                                          work.call.identity)  # fmt: skip
        try:
            self._fanout.execute([work for work, _ in earlier], self, retrying=True)
        finally:
            # Interrupted, or the executor refused: what did not run can be retried again.
            for work, error in earlier:
                if not work.settled:
                    self._failed.append(work)
                    self.errors.append(error)
        return self

    def __getstate__(self) -> dict[str, Any]:
        # Snapshots keep the values and errors; the executor and journal rows stay behind.
        return {"errors": self.errors}


# -- the driver -------------------------------------------------------------------


class _Work:
    """One distinct call to run: its ``_Call`` and the positions of its item."""

    __slots__ = ("call", "indices", "settled")

    def __init__(self, call: _Call, index: int) -> None:
        self.call, self.indices, self.settled = call, [index], False

    @property
    def item(self) -> Any:
        return self.call.args[0]


def map(
    fn: Callable[..., Any],
    items: Iterable[Any],
    executor: Any = None,
    max_workers: int | None = None,
    ordered: bool = True,
    errors: str = "raise",
    progress: bool = True,
) -> Results:
    """Call the step ``fn`` once per item, in parallel; each call is a durable step.

    Items whose call completed earlier (same cell, step, item and occurrence, as a
    loop of ``fn(item)`` would identify them, or the step's ``key=``) replay from the
    journal; the rest are submitted to the executor, where each runs the step's retry
    policy. Only this thread journals: results are made durable in group commits,
    at most :data:`FLUSH_SECONDS` (50 ms) or :data:`FLUSH_ITEMS` (512) results after
    they arrive (from Dask, finished results are fetched every 20 ms), so a crash
    re-runs at most those and the items in flight.

    Parameters
    ----------
    fn : a ``@dnb.step`` function
        Called as ``fn(item)``; it must be picklable by reference (defined at the top
        of a module or notebook) for process pools; Dask pickles it by value.
    items : iterable
        Read into a list at once.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Where to run the items; by default a new ``ThreadPoolExecutor(max_workers)``.
    max_workers : int, optional
        Size of the default thread pool (only without ``executor``).
    ordered : bool
        True: results in input order. False: ``(item, result)`` pairs as completed.
    errors : {"raise", "collect"}
        ``"raise"``: the first item that fails on every attempt raises its error
        (:class:`~durable_nb.StepFailed`, or a ``non_retryable`` error as is) once the
        items already running have finished and everything completed is journaled;
        items not started are cancelled. ``"collect"``: every item runs; failures are
        in ``.errors`` and ``.retry()`` runs them again.
    progress : bool
        Show a progress bar (tqdm.auto: a widget in JupyterLab, text elsewhere) with
        done / replayed / failed counts.

    Returns
    -------
    Results
        A list (see :class:`Results`) with ``.errors`` and ``.retry()``.
    """
    step = getattr(fn, "_dnb_step", None)
    if not isinstance(step, _Step):
        raise TypeError(
            f"dnb.map needs a @dnb.step function, not {fn!r}: decorate it with @dnb.step "
            "(its retry policy then applies to each item)."
        )
    if errors not in ("raise", "collect"):
        raise ValueError(f'errors must be "raise" or "collect", not {errors!r}')
    if executor is not None and max_workers is not None:
        raise ValueError("max_workers sizes the default thread pool; with an executor, size it")
    fanout = _Fanout(fn, step, executor, max_workers, ordered, errors, progress)
    return fanout.start(list(items))


class _Fanout:
    """One ``dnb.map`` call: identities, replay, submission and the journaling loop."""

    def __init__(self, fn: Any, step: _Step, executor: Any, max_workers: int | None,
                 ordered: bool, errors: str, progress: bool) -> None:  # fmt: skip
        self.fn, self.step, self.executor, self.max_workers = fn, step, executor, max_workers
        self.ordered, self.errors, self.progress = ordered, errors, progress
        self.rt: runtime.Runtime | None = None
        self.replayed = self.done = self.failed = 0
        self.draining = False

    # -- identify and replay -------------------------------------------------

    def start(self, items: list[Any]) -> Results:
        rt = runtime.current() if _CURRENT.get() is None else None  # nested: un-journaled
        self.rt = rt
        step = self.step
        out = Results([None] * len(items) if self.ordered else ())
        out._fanout = self
        work: list[_Work] = []
        if rt is not None and rt.enabled:
            by_identity: dict[str, _Work] = {}
            # Calls are copies of one made the usual way (all its fields, whatever they
            # become), which skips the random placeholder identity each would draw.
            proto = _Call(step, (None,), {})
            proto.rt = rt
            fields = proto.__dict__
            for i, (item, (identity, n, key)) in enumerate(
                zip(items, _identities(rt, step, items), strict=True)
            ):
                value = rt.replay(identity, step.name)
                if value is not runtime.MISS:
                    self.replayed += 1
                    if self.ordered:
                        out[i] = value
                    else:
                        out.append((item, value))
                    continue
                same = by_identity.get(identity)
                if same is not None:  # the same call twice (a shared key= ): run it once
                    same.indices.append(i)
                    continue
                call = object.__new__(_Call)
                call.__dict__.update(fields)
                call.args, call.identity, call.occurrence, call.key = (item,), identity, n, key
                call.attempts = Attempts(step.name, step.policy, identity)
                by_identity[identity] = w = _Work(call, i)
                work.append(w)
            if self.replayed and not step.internal:
                rt.tally("replayed", self.replayed)
        else:
            for i, item in enumerate(items):
                call = _Call(step, (item,), {})
                call.attempts = Attempts(step.name, step.policy, call.identity)
                work.append(_Work(call, i))
        if work or self.progress:
            self.execute(work, out, total=len(items))
        return out

    # -- run and journal -----------------------------------------------------

    def execute(self, work: list[_Work], out: Results, total: int | None = None,
                retrying: bool = False) -> None:  # fmt: skip
        """Run ``work``, journal each result as it arrives, fill ``out`` in."""
        self.out, self.stop = out, None
        if retrying:
            self.done = self.failed = self.replayed = 0
        self.pending_sync, self.first_unsynced, self.last_sync = 0, 0.0, time.monotonic()
        bar = self._bar(len(work) if retrying else total or 0)
        backend = None
        try:
            if work:
                backend = self._backend()
                backend.start(work)
                while backend.busy():
                    more = backend.submit_some()
                    tokens, idle = self._collect(backend, block=not more)
                    for w, ok, value, log in backend.resolve(tokens):
                        if ok is not None:
                            self._settle(w, ok, value, log)
                    self._maybe_sync(idle)
                    if bar is not None and tokens:
                        self._update(bar)
                    if self.stop is not None and not backend.stopped:
                        backend.cancel()  # not started: never run; running: journaled
        except KeyboardInterrupt:
            if backend is not None:
                self._drain(backend)
            raise
        finally:
            if backend is not None:
                if backend.busy():  # interrupted: nothing more will be journaled
                    backend.cancel()
                backend.close()
            self._sync()
            if bar is not None:
                self._update(bar)
                bar.close()
        if self.stop is not None:
            work, exc = self.stop
            exc.add_note(
                f"dnb.map: item {work.indices[0]} ({_repr.repr(work.item)}) failed; the "
                f"{self.done + self.replayed} items that completed are journaled and replay "
                "when the cell re-runs."
            )
            raise exc

    def _drain(self, backend: _Backend) -> None:
        """Ctrl-C: nothing new starts, and what is running is waited for and journaled.

        Otherwise a re-run would start those items again while they may still be
        running. The wait is bounded (:data:`DRAIN_SECONDS`); a second Ctrl-C ends it.
        """
        backend.cancel()
        self.draining = True
        deadline = time.monotonic() + DRAIN_SECONDS
        try:
            while backend.busy() and time.monotonic() < deadline:
                tokens, _ = self._collect(backend, block=True)
                for w, ok, value, log in backend.resolve(tokens):
                    if ok is not None:
                        self._settle(w, ok, value, log)
        except KeyboardInterrupt:
            pass
        finally:
            self._sync()
        if backend.busy():
            from ._report import report

            report("dnb.map interrupted while items were still running: their results are "
                   "not journaled, and a re-run of the cell runs them again")  # fmt: skip

    def _backend(self) -> _Backend:
        ex = self.executor
        if ex is None:
            pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="dnb-map")
            return _Threads(self, pool, own=True)
        if _is_dask(ex):
            return _Dask(self, ex, _portable(self.fn, self.step))
        if isinstance(ex, ThreadPoolExecutor) and isinstance(getattr(ex, "_max_workers", 0), int):
            return _Threads(self, ex)
        if callable(getattr(ex, "submit", None)):
            return _Futures(self, ex, _portable(self.fn, self.step))
        raise TypeError(
            f"executor must be a concurrent.futures.Executor or a dask.distributed.Client, "
            f"not {type(ex).__name__}"
        )

    def _collect(self, backend: _Backend, block: bool) -> tuple[list[Any], bool]:
        """Take what finished (waiting for something when ``block``); ``idle``: no more."""
        q, tokens = backend.queue, []
        try:
            if block:
                timeout = 0.1  # short, so that Ctrl-C is noticed promptly
                if self.pending_sync:
                    now = time.monotonic()
                    timeout = min(timeout, self.first_unsynced + FLUSH_SECONDS - now,
                                  self.last_sync + _IDLE_SYNC_GAP - now)  # fmt: skip
                got = q.get(timeout=max(timeout, 0.0001))
                if type(got) is list:  # Dask hands over batches
                    tokens.extend(got)
                else:
                    tokens.append(got)
            while len(tokens) < FLUSH_ITEMS:
                got = q.get_nowait()
                if type(got) is list:
                    tokens.extend(got)
                else:
                    tokens.append(got)
        except queue.Empty:
            return tokens, True
        return tokens, False

    def _settle(self, work: _Work, ok: bool, value: Any, log: list[dict[str, Any]]) -> None:
        """Journal one finished item (durable at the next sync) and place its result."""
        call = work.call
        call.attempts.log = log
        work.settled = True
        if not ok:
            self._failed(work, value)
        else:
            self._succeeded(work, value)
        if call.rt is not None and call.rt.journaling:
            if not self.pending_sync:
                self.first_unsynced = time.monotonic()
            self.pending_sync += 1

    def _succeeded(self, work: _Work, value: Any) -> None:
        self.done += 1
        value = work.call.finish(value, sync=False)
        out = self.out
        for i in work.indices:
            if self.ordered:
                out[i] = value
            else:
                out.append((work.item, value))

    def _failed(self, work: _Work, exc: BaseException) -> None:
        """An item failed on every attempt (or its worker did): ask, collect, or stop.

        With ``errors="raise"`` in an interactive kernel the map suspends on the item
        like any step (Retry / Skip with value / Raise); items still running go on, and
        their results are journaled once the person has chosen.
        """
        work.call._journal_error(exc, sync=False)
        if self.errors == "raise" and isinstance(exc, StepFailed) and not self.draining:
            answer = self._ask(work, exc)
            if answer is not None:
                self._succeeded(work, answer[0])
                return
        self.failed += 1
        if self.errors == "collect":
            out = self.out
            out.errors.append((work.item, exc))
            out._failed.append(work)
            if self.ordered:
                for i in work.indices:
                    out[i] = exc
            return
        if self.stop is None:
            self.stop = (work, exc)

    def _ask(self, work: _Work, exc: StepFailed) -> tuple[Any] | None:
        """Suspend on a failed item: ``(value,)`` when it was retried or skipped, else None.

        A retry runs the item again here, on a thread of its own, with a fresh budget.
        """
        call = work.call
        while True:
            prompt = call._suspension(exc)
            if prompt is None:
                return None
            self._sync()  # what completed is durable before anyone is waited for
            decision = prompt()
            if decision.action == "raise":
                return None
            if call.attempts.decided(decision):
                return (decision.value,)
            step = self.step
            with ThreadPoolExecutor(1, thread_name_prefix="dnb-map-retry") as pool:
                ok, value, log = pool.submit(
                    _run_item, step.fn, step.name, step.policy, call.identity, work.item
                ).result()
            call.attempts.log.extend(log)
            if ok:
                return (value,)
            if not isinstance(value, StepFailed):
                raise value
            exc = value
            call._journal_error(exc, sync=False)

    def _maybe_sync(self, idle: bool) -> None:
        if not self.pending_sync:
            return
        now = time.monotonic()
        if (
            self.pending_sync >= FLUSH_ITEMS
            or now - self.first_unsynced >= FLUSH_SECONDS
            or (idle and now - self.last_sync >= _IDLE_SYNC_GAP)
        ):
            self._sync()

    def _sync(self) -> None:
        if self.pending_sync and self.rt is not None:
            self.rt.sync()
        self.pending_sync, self.last_sync = 0, time.monotonic()

    # -- progress ------------------------------------------------------------

    def _bar(self, total: int) -> Any:
        if not self.progress:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:  # an optional nicety: never the reason a map fails
            return None
        bar = tqdm(total=total, desc=self.step.name, unit="item", dynamic_ncols=True)
        self._shown = 0
        self._update(bar)
        return bar

    def _update(self, bar: Any) -> None:
        n = self.done + self.failed + self.replayed
        bar.set_postfix_str(
            f"done={self.done} replayed={self.replayed} failed={self.failed}", refresh=False
        )
        bar.update(n - self._shown)
        self._shown = n


# -- identities -------------------------------------------------------------------


def _identities(rt: runtime.Runtime, step: _Step, items: list[Any]) -> list[tuple]:
    """``(identity, occurrence, key)`` per item, exactly as ``rt.identity`` gives them.

    ``rt.identity`` hashes all of ``fingerprint(epoch, cell, name, argfp, n)`` and
    ``fingerprint((item,), {})`` per call; here the shared parts are hashed once and
    copied (xxh3 state copy), ~3× faster, which matters for replaying 100,000 items/s.
    The first item is checked against ``rt.identity``; any difference (the identity
    rule changed) and every item goes through ``rt.identity``.
    """
    name, key = step.name, step.key
    if key is not None or rt.strict:  # strict replay: rt.identity keeps the arguments
        out = []
        for item in items:
            k = key(item) if callable(key) else key
            k = None if k is None else str(k)
            out.append((*rt.identity(name, (item,), {}, k), k))
        return out
    if not items:
        return []
    first, n0 = rt.identity(name, (items[0],), {}, None)
    args_h = xxhash.xxh3_128()
    args_h.update(b"tuple:2[tuple:1[")  # fingerprint((item,), {}) around the item
    ident_h = xxhash.xxh3_128()
    ident_h.update(b"tuple:5[")  # fingerprint(epoch, cell_key, name, argfp, n)
    for part in (rt.epoch, rt.cell.cell_key, name):
        codec.feed(ident_h, part, set())
    feed, occurrence = codec.feed, rt.cell.occurrence

    def argfp(item: Any) -> str:
        h = args_h.copy()
        feed(h, item, set())
        h.update(b"]dict:0[]]")
        return h.hexdigest()

    def identity(fp: str, n: int) -> str:
        h = ident_h.copy()
        feed(h, fp, set())
        feed(h, n, set())
        h.update(b"]")
        return h.hexdigest()

    if identity(argfp(items[0]), n0) != first:
        return [(first, n0, None)] + [
            (*rt.identity(name, (item,), {}, None), None) for item in items[1:]
        ]
    out = [(first, n0, None)]
    for item in items[1:]:
        fp = argfp(item)
        n = occurrence(name, fp)
        out.append((identity(fp, n), n, None))
    return out


# -- executors --------------------------------------------------------------------


def _is_dask(ex: Any) -> bool:
    """A dask.distributed Client, recognized without importing dask."""
    return type(ex).__module__.partition(".")[0] == "distributed" and hasattr(ex, "gather")


def _portable(wrapper: Any, step: _Step) -> Any:
    """What to send to another process for the step: the object its name resolves to.

    pickle sends functions by reference (module + qualified name): that name leads
    to the wrapper when ``@dnb.step`` decorated the definition, to the body when the
    step was made with ``step(fn)`` under another name. The worker unwraps either.
    """
    fn = step.fn
    obj: Any = sys.modules.get(getattr(fn, "__module__", None) or "")
    for part in (getattr(fn, "__qualname__", "") or "").split("."):
        obj = getattr(obj, part, None)
    return fn if obj is fn else wrapper


class _Backend:
    """Submits items and hands back what finished through ``queue``."""

    queue: queue.SimpleQueue
    stopped = False

    def start(self, work: list[_Work]) -> None: ...
    def submit_some(self) -> bool: ...
    def busy(self) -> bool: ...
    def resolve(self, tokens: list[Any]) -> Iterable[tuple]: ...
    def cancel(self) -> None: ...
    def close(self) -> None: ...


class _Threads(_Backend):
    """A thread pool: one runner per thread takes items from a shared deque.

    No future per item: a runner reports each item through the queue as it ends,
    so journaling granularity stays one item, the load stays balanced, and the
    kernel saves the ~8 µs a ``submit`` costs per item. Stopping empties the deque,
    so items not started never start.
    """

    def __init__(self, fanout: _Fanout, pool: ThreadPoolExecutor, own: bool = False) -> None:
        step = fanout.step
        self.pool, self.own = pool, own
        self.run = _run_item
        self.args = (step.fn, step.name, step.policy)
        self.queue = queue.SimpleQueue()

    def start(self, work: list[_Work]) -> None:
        self.todo, self.left = collections.deque(work), len(work)
        for _ in range(min(len(work), self.pool._max_workers)):
            self.pool.submit(self._runner)

    def _runner(self) -> None:
        todo, put, run, (fn, name, policy) = self.todo, self.queue.put, self.run, self.args
        while not self.stopped:
            try:
                w = todo.popleft()
            except IndexError:
                return
            try:
                put((w, *run(fn, name, policy, w.call.identity, w.call.args[0])))
            except BaseException as exc:  # a KeyboardInterrupt, SystemExit in the body
                put((w, False, exc, []))

    def submit_some(self) -> bool:
        return False

    def busy(self) -> bool:
        return self.left > 0

    def resolve(self, tokens: list[Any]) -> Iterable[tuple]:
        self.left -= len(tokens)
        return tokens

    def cancel(self) -> None:
        self.stopped = True
        while True:  # each item is taken by one party: a runner or this loop
            try:
                self.todo.popleft()
            except IndexError:
                break
            self.left -= 1

    def close(self) -> None:
        if self.own:
            self.pool.shutdown(wait=False)


class _Futures(_Backend):
    """Any other ``concurrent.futures``-style executor: a future per item."""

    def __init__(self, fanout: _Fanout, executor: Any, fn: Any) -> None:
        self.executor, self.fn = executor, fn
        step = fanout.step
        self.name, self.policy = step.name, step.policy
        self.run = _run_item
        self.queue = queue.SimpleQueue()
        self.outstanding: dict[Any, _Work] = {}

    def start(self, work: list[_Work]) -> None:
        self.work, self.next = work, 0

    def submit_some(self) -> bool:
        if self.stopped:
            return False
        chunk = self.work[self.next : self.next + _SUBMIT_CHUNK]
        submit, put, outstanding = self.executor.submit, self.queue.put, self.outstanding
        run, fn, name, policy = self.run, self.fn, self.name, self.policy
        for w in chunk:
            f = submit(run, fn, name, policy, w.call.identity, w.call.args[0])
            outstanding[f] = w
            f.add_done_callback(put)
        self.next += len(chunk)
        return self.next < len(self.work)

    def busy(self) -> bool:
        return bool(self.outstanding) or (not self.stopped and self.next < len(self.work))

    def resolve(self, tokens: list[Any]) -> Iterable[tuple]:
        for f in tokens:
            w = self.outstanding.pop(f)
            if f.cancelled():
                if self.stopped:
                    yield w, None, None, None
                else:
                    yield w, False, CancelledError("the executor cancelled this item"), []
                continue
            exc = f.exception()
            if exc is not None:  # the executor failed (broken pool, unpicklable value)
                yield w, False, exc, []
            else:
                yield (w, *f.result())

    def cancel(self) -> None:
        self.stopped = True
        for f in list(self.outstanding):
            f.cancel()

    def close(self) -> None:
        pass  # the caller's executor: the caller shuts it down


class _Dask(_Backend):
    """A dask.distributed Client: one ``client.map`` call, results gathered in batches.

    A feeder thread looks at the futures' status every :data:`_GATHER_WINDOW`, fetches
    the finished ones in one ``gather`` and hands the results to the kernel's thread,
    which journals them meanwhile. (``as_completed`` costs ~0.3 ms of CPU per item on
    the client's event loop, which an in-process cluster shares with the scheduler.)
    """

    def __init__(self, fanout: _Fanout, client: Any, fn: Any) -> None:
        step = fanout.step
        self.client, self.task = client, functools.partial(_run_item, fn, step.name, step.policy)
        self.prefix = f"dnb.map-{step.name}-{uuid.uuid4().hex[:8]}-"
        self.queue = queue.SimpleQueue()
        self.outstanding: dict[Any, _Work] = {}
        self.fatal: BaseException | None = None

    def start(self, work: list[_Work]) -> None:
        identities = [w.call.identity for w in work]
        items = [w.call.args[0] for w in work]
        keys = [f"{self.prefix}{i}" for i in range(len(work))]
        futures = self.client.map(self.task, identities, items, key=keys, pure=False)
        self.outstanding = dict(zip(futures, work, strict=True))
        threading.Thread(target=self._feed, args=(futures,), name="dnb-map-dask",
                         daemon=True).start()  # fmt: skip

    def _feed(self, futures: list[Any]) -> None:
        # Dask runs tasks about in submission order, so the finished ones are found
        # near the front: scan the first _SCAN of the waiting ones each time, all of
        # them twice a second (a status read is ~0.1 µs).
        waiting, full = list(futures), 0.0
        futures.clear()  # hold no reference to a journaled result: the cluster frees it
        try:
            while waiting:
                time.sleep(_GATHER_WINDOW)
                now = time.monotonic()
                head = len(waiting) if now - full >= 0.5 else _SCAN
                if head >= len(waiting):
                    full = now
                done = [f for f in waiting[:head] if f.status not in _WAITING]
                if done:
                    ended = set(done)
                    waiting = [f for f in waiting[:head] if f not in ended] + waiting[head:]
                    self.queue.put(self._gather(done))
        except BaseException as exc:  # never leave the kernel's thread waiting forever
            self.fatal = exc
            self.queue.put([])

    def _gather(self, batch: list[Any]) -> list[tuple]:
        """``(future, ok, value or error, log)`` per future; ``ok`` None: cancelled."""
        finished = [f for f in batch if f.status == "finished"]
        try:
            values = dict(zip(finished, self.client.gather(finished), strict=True))
        except Exception:  # one of them was lost meanwhile: take them one by one
            values = {}
        out = []
        for f in batch:
            if f in values:
                out.append((f, *values[f]))
            elif f.status == "cancelled":
                out.append((f, None, None, None))
            else:
                try:
                    out.append((f, *f.result()))
                except BaseException as exc:  # the task itself failed (worker lost, ...)
                    out.append((f, False, exc, []))
        return out

    def submit_some(self) -> bool:
        return False

    def busy(self) -> bool:
        return bool(self.outstanding)

    def resolve(self, tokens: list[Any]) -> Iterable[tuple]:
        if self.fatal is not None:
            raise self.fatal
        for f, ok, value, log in tokens:
            w = self.outstanding.pop(f, None)
            if w is None:  # cancelled by us and forgotten already
                continue
            if ok is None and not self.stopped:
                ok, value, log = False, CancelledError("the Dask cluster cancelled this item"), []
            yield w, ok, value, log

    def cancel(self) -> None:
        # Dask cancels asynchronously: forget the cancelled ones now rather than wait.
        self.stopped = True
        left = [f for f in self.outstanding if not f.done()]
        for f in left:
            del self.outstanding[f]
        if left:
            self.client.cancel(left)

    def close(self) -> None:
        self.outstanding.clear()
