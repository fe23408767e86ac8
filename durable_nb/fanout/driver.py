"""The ``dnb.map`` driver: identities and replay, then run, journal and show progress.

Only the calling thread journals, in group commits bounded in time and in count.
"""

from __future__ import annotations

import queue
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .. import runtime
from .._report import report
from ..errors import StepFailed
from ..retry import current_step
from ..steps import Step, StepCall
from .backends import Backend, Work, backend_for, run_item

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


class Fanout:
    """One ``dnb.map`` call: identities, replay, submission and the journaling loop.

    ``out`` is the list results go into (a ``Results``); it needs ``errors`` and
    ``_failed`` lists for ``errors="collect"``.
    """

    def __init__(self, fn: Any, step: Step, executor: Any, max_workers: int | None,
                 ordered: bool, errors: str, progress: bool) -> None:  # fmt: skip
        self.fn, self.step, self.executor, self.max_workers = fn, step, executor, max_workers
        self.ordered, self.errors, self.progress = ordered, errors, progress
        self.rt: runtime.Runtime | None = None
        self.replayed = self.done = self.failed = 0
        self.draining = False

    # -- identify and replay -------------------------------------------------

    def start(self, items: list[Any], out: Any) -> Any:
        """Replay what the journal has, run the rest, fill ``out`` in; return it."""
        rt = runtime.current() if current_step() is None else None  # nested: un-journaled
        self.rt = rt
        step = self.step
        work: list[Work] = []
        if rt is not None and rt.enabled:
            by_identity: dict[str, Work] = {}
            keys = None
            if step.key is not None:
                keys = [step.key_of((item,), {}) for item in items]
            identities = rt.identities(step.name, items, keys)
            for i, (item, (identity, n)) in enumerate(zip(items, identities, strict=True)):
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
                key = keys[i] if keys is not None else None
                call = StepCall(step, (item,), {}, rt, identity, n, key)
                by_identity[identity] = w = Work(call, i)
                work.append(w)
            if self.replayed and not step.internal:
                rt.tally("replayed", self.replayed)
        else:
            work = [Work(StepCall(step, (item,), {}, rt), i) for i, item in enumerate(items)]
        if work or self.progress:
            self.execute(work, out, total=len(items))
        return out

    # -- run and journal -----------------------------------------------------

    def execute(self, work: list[Work], out: Any, total: int | None = None,
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
                backend = backend_for(self.executor, self.max_workers, self.fn, self.step)
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
            w, exc = self.stop
            exc.add_note(
                f"dnb.map: item {w.indices[0]} {w.call.shown_args()} failed; the "
                f"{self.done + self.replayed} items that completed are journaled and replay "
                "when the cell re-runs."
            )
            raise exc

    def _drain(self, backend: Backend) -> None:
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
            report("dnb.map interrupted while items were still running: their results are "
                   "not journaled, and a re-run of the cell runs them again")  # fmt: skip

    def _collect(self, backend: Backend, block: bool) -> tuple[list[Any], bool]:
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

    def _settle(self, work: Work, ok: bool, value: Any, log: list[dict[str, Any]]) -> None:
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

    def _succeeded(self, work: Work, value: Any) -> None:
        self.done += 1
        value = work.call.finish(value, sync=False)
        out = self.out
        for i in work.indices:
            if self.ordered:
                out[i] = value
            else:
                out.append((work.item, value))

    def _failed(self, work: Work, exc: BaseException) -> None:
        """An item failed on every attempt (or its worker did): ask, collect, or stop.

        With ``errors="raise"`` in an interactive kernel the map suspends on the item
        like any step (Retry / Skip with value / Raise); items still running go on, and
        their results are journaled once the person has chosen.
        """
        work.call.fail(exc, sync=False)
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

    def _ask(self, work: Work, exc: StepFailed) -> tuple[Any] | None:
        """Suspend on a failed item: ``(value,)`` when it was retried or skipped, else None.

        A retry runs the item again here, on a thread of its own, with a fresh budget.
        """
        call = work.call
        while True:
            prompt = call.ask(exc)
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
                    run_item, step.fn, step.name, step.policy, call.identity, work.item
                ).result()
            call.attempts.log.extend(log)
            if ok:
                return (value,)
            if not isinstance(value, StepFailed):
                raise value
            exc = value
            call.fail(exc, sync=False)

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
        from tqdm.auto import tqdm  # a dependency, imported when a map shows progress

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
