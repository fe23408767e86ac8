"""Where ``dnb.map`` runs its items: a thread pool, any futures executor, or Dask.

Each backend submits items and hands back what finished through its ``queue``.
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

from ..retry import Attempts, RetryPolicy
from ..steps import Step, StepCall

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


def run_item(fn: Callable[..., Any], name: str, policy: RetryPolicy, identity: str,
             item: Any) -> tuple:  # fmt: skip
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


# -- in the kernel ----------------------------------------------------------------


class Work:
    """One distinct call to run: its :class:`StepCall` and the positions of its item."""

    __slots__ = ("call", "indices", "settled")

    def __init__(self, call: StepCall, index: int) -> None:
        self.call, self.indices, self.settled = call, [index], False

    @property
    def item(self) -> Any:
        return self.call.args[0]


def backend_for(executor: Any, max_workers: int | None, fn: Any, step: Step) -> Backend:
    """The backend that runs ``step``'s items on ``executor`` (None: a new thread pool)."""
    if executor is None:
        pool = ThreadPoolExecutor(max_workers, thread_name_prefix="dnb-map")
        return Threads(step, pool, own=True)
    if is_dask(executor):
        return Dask(step, executor, portable(fn, step))
    if isinstance(executor, ThreadPoolExecutor):
        return Threads(step, executor)
    if callable(getattr(executor, "submit", None)):
        return Futures(step, executor, portable(fn, step))
    raise TypeError(
        f"executor must be a concurrent.futures.Executor or a dask.distributed.Client, "
        f"not {type(executor).__name__}"
    )


def is_dask(ex: Any) -> bool:
    """A dask.distributed Client, recognized without importing dask."""
    return type(ex).__module__.partition(".")[0] == "distributed" and hasattr(ex, "gather")


def portable(wrapper: Any, step: Step) -> Any:
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


class Backend:
    """Submits items and hands back what finished through ``queue``.

    ``resolve`` turns what came through the queue into ``(work, ok, value or error,
    log)``; ``ok`` None means cancelled by us (nothing to journal).
    """

    queue: queue.SimpleQueue
    stopped = False

    def start(self, work: list[Work]) -> None: ...
    def submit_some(self) -> bool: ...
    def busy(self) -> bool: ...
    def resolve(self, tokens: list[Any]) -> Iterable[tuple]: ...
    def cancel(self) -> None: ...
    def close(self) -> None: ...


class Threads(Backend):
    """A thread pool: one runner per thread takes items from a shared deque.

    No future per item: a runner reports each item through the queue as it ends,
    so journaling granularity stays one item, the load stays balanced, and the
    kernel saves the ~8 µs a ``submit`` costs per item. Stopping empties the deque,
    so items not started never start. The pool's size is not asked: each runner
    that starts submits the next, so runners fill the free threads and one more
    waits in the pool's queue (it finds the deque empty when it starts).
    """

    def __init__(self, step: Step, pool: ThreadPoolExecutor, own: bool = False) -> None:
        self.pool, self.own = pool, own
        self.args = (step.fn, step.name, step.policy)
        self.queue = queue.SimpleQueue()

    def start(self, work: list[Work]) -> None:
        self.todo, self.left = collections.deque(work), len(work)
        if work:
            self.pool.submit(self._runner)

    def _runner(self) -> None:
        todo, put, (fn, name, policy) = self.todo, self.queue.put, self.args
        if todo and not self.stopped:
            try:
                self.pool.submit(self._runner)
            except RuntimeError:  # the pool is shutting down: the runners it has go on
                pass
        while not self.stopped:
            try:
                w = todo.popleft()
            except IndexError:
                return
            try:
                put((w, *run_item(fn, name, policy, w.call.identity, w.call.args[0])))
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


class Futures(Backend):
    """Any other ``concurrent.futures``-style executor: a future per item."""

    def __init__(self, step: Step, executor: Any, fn: Any) -> None:
        self.executor, self.fn = executor, fn
        self.name, self.policy = step.name, step.policy
        self.queue = queue.SimpleQueue()
        self.outstanding: dict[Any, Work] = {}

    def start(self, work: list[Work]) -> None:
        self.work, self.next = work, 0

    def submit_some(self) -> bool:
        if self.stopped:
            return False
        chunk = self.work[self.next : self.next + _SUBMIT_CHUNK]
        submit, put, outstanding = self.executor.submit, self.queue.put, self.outstanding
        fn, name, policy = self.fn, self.name, self.policy
        for w in chunk:
            f = submit(run_item, fn, name, policy, w.call.identity, w.call.args[0])
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


class Dask(Backend):
    """A dask.distributed Client: one ``client.map`` call, results gathered in batches.

    A feeder thread looks at the futures' status every :data:`_GATHER_WINDOW`, fetches
    the finished ones in one ``gather`` and hands the results to the kernel's thread,
    which journals them meanwhile. (``as_completed`` costs ~0.3 ms of CPU per item on
    the client's event loop, which an in-process cluster shares with the scheduler.)
    """

    def __init__(self, step: Step, client: Any, fn: Any) -> None:
        self.client, self.task = client, functools.partial(run_item, fn, step.name, step.policy)
        self.prefix = f"dnb.map-{step.name}-{uuid.uuid4().hex[:8]}-"
        self.queue = queue.SimpleQueue()
        self.outstanding: dict[Any, Work] = {}
        self.fatal: BaseException | None = None

    def start(self, work: list[Work]) -> None:
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
