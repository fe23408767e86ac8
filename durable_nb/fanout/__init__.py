"""``dnb.map``: one step over many items, on threads, processes or a Dask cluster.

Workers run each item's retries; only the calling thread journals, in group commits.
The driver is in :mod:`.driver`, the executors in :mod:`.backends`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..errors import DurableError
from ..steps import step_of
from .backends import Work
from .driver import FLUSH_ITEMS, FLUSH_SECONDS, Fanout

__all__ = ["FLUSH_ITEMS", "FLUSH_SECONDS", "Results", "map"]


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
    step = step_of(fn)
    if step is None:
        raise TypeError(
            f"dnb.map needs a @dnb.step function, not {fn!r}: decorate it with @dnb.step "
            "(its retry policy then applies to each item)."
        )
    if errors not in ("raise", "collect"):
        raise ValueError(f'errors must be "raise" or "collect", not {errors!r}')
    if executor is not None and max_workers is not None:
        raise ValueError("max_workers sizes the default thread pool; with an executor, size it")
    items = list(items)
    fanout = Fanout(fn, step, executor, max_workers, ordered, errors, progress)
    out = Results([None] * len(items) if ordered else ())
    out._fanout = fanout
    return fanout.start(items, out)


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
    _fanout: Fanout | None = None
    _failed: list[Work] | tuple = ()

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
            work.call.restart()
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
