"""The replay index: completed step results of the current epoch, found by identity.

Nothing is read when the journal opens (a journal of millions of steps opens as fast as
an empty one). A lookup loads, in one query, the results recorded by the asking cell
(its key) and those of ``key=`` calls of the asking step (its name), and keeps them for
the next lookups; so a cell that replays thousands of steps costs one query, not one
per step (~0.4 ms each). Results written by this process are kept until they are folded
into DuckDB. What is kept is bounded: past :data:`KEEP` results, the batches are dropped
and loaded again when asked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

from . import manifest
from .schema import CellRow, StepRow
from .seal import select, verify

#: Results kept in memory from DuckDB (batches are dropped past it).
KEEP = 200_000

_ORDER = "ORDER BY steps.ended, steps.record_id"  # the latest record of an identity wins


class Hit(NamedTuple):
    """A completed step result; ``signed``: whether this user signed its record (for a
    result in a blob file, the record's part: the content is checked as it is read)."""

    kind: str
    inline: bytes | None
    blob: str | None
    sig: str | None
    signed: bool

    @classmethod
    def of(cls, row: StepRow, journal: str | None, signed: bool | None = None) -> Hit:
        """``row``'s hit; ``signed`` None: its signature is checked here (for the journal
        whose id is ``journal``)."""
        if signed is None:
            signed = verify(row, journal, quick=True)
        return cls(row.kind, row.result, row.blob, row.sig, signed)


class ReplayIndex:
    """Completed results by identity, loaded by batch on first need.

    Parameters
    ----------
    select : callable
        ``select(sql, params) -> rows``: runs a query on DuckDB as it is (no fold: what is
        not folded yet was written by this process and is in :attr:`recent`).
    """

    def __init__(self, select: Callable[[str, list], list[tuple]]) -> None:
        self._select = select
        self.epoch = 0
        #: The journal's id: signatures name it (:mod:`.binding`).
        self.journal: str | None = None
        #: identity -> (batch it belongs to, hit): written by this process, not folded yet.
        self.recent: dict[str, tuple[tuple[str, str], Hit]] = {}
        self._batches: dict[tuple[str, str], dict[str, Hit]] = {}
        #: Batches some of whose signed results are missing (deleted or withheld).
        self.incomplete: set[tuple[str, str]] = set()
        #: Cell executions a damaged log may have lost records of (not checked).
        self.damaged: set[int] = set()
        self._kept = 0

    def reset(self, epoch: int, journal: str | None) -> None:
        """Forget everything (a new epoch, re-signed rows, a journal id given)."""
        self.epoch = epoch
        self.journal = journal
        self.recent.clear()
        self._batches.clear()
        self.incomplete.clear()
        self._kept = 0

    def add(self, identity: str, cell_key: str, name: str, key: str | None, hit: Hit) -> None:
        """A result this process has just written."""
        self.recent[identity] = (_batch_of(cell_key, name, key), hit)

    def folded(self) -> None:
        """The recent results are in DuckDB now: keep them only in batches already loaded."""
        for identity, (batch, hit) in self.recent.items():
            loaded = self._batches.get(batch)
            if loaded is not None:
                self._kept += identity not in loaded
                loaded[identity] = hit
        self.recent.clear()

    def get(self, identity: str, cell_key: str | None, name: str | None) -> Hit | None:
        """The result of ``identity``, asked by the cell ``cell_key`` for step ``name``.

        Without them, one query for that identity alone.
        """
        found = self.recent.get(identity)
        if found is not None:
            return found[1]
        if cell_key is None or name is None:
            rows = self._select(
                select(StepRow, f"WHERE status = 'ok' AND epoch = ? AND identity = ? {_ORDER}"),
                [self.epoch, identity],
            )
            return Hit.of(StepRow._make(rows[-1]), self.journal) if rows else None
        for batch in (("cell", cell_key), ("key", name)):
            hit = self._batch(batch).get(identity)
            if hit is not None:
                return hit
        return None

    def _batch(self, batch: tuple[str, str]) -> dict[str, Hit]:
        loaded = self._batches.get(batch)
        if loaded is None:
            kind, value = batch
            where = "cell_key = ? AND key IS NULL"
            if kind == "key":
                where = "name = ? AND key IS NOT NULL"
            sql = select(StepRow, f"WHERE status = 'ok' AND epoch = ? AND {where} {_ORDER}")
            rows = [StepRow._make(r) for r in self._select(sql, [self.epoch, value])]
            if self._kept + len(rows) > KEEP:
                self._batches.clear()
                self._kept = 0
            hits = [Hit.of(r, self.journal) for r in rows]
            name = manifest.batch(value, value, None if kind == "cell" else value)
            if self._missing(rows, hits, manifest.entry(self.epoch, name)):
                self.incomplete.add(batch)
            loaded = self._batches[batch] = {r.identity: h for r, h in zip(rows, hits, strict=True)}
            self._kept += len(loaded)
        return loaded

    def _missing(self, rows: list[StepRow], hits: list[Hit], which: str) -> bool:
        """Whether signed results of batch ``which`` are missing: the manifests of the cell
        executions that wrote to it (signed ones only) count more, or places are skipped."""
        damaged = self.damaged
        mine = [r for r, h in zip(rows, hits, strict=True) if h.signed and r.seq not in damaged]
        cells = self._select(select(CellRow, "WHERE contains(manifest, ?)"), [json.dumps(which)])
        signed = [c for c in map(CellRow._make, cells)
                  if c.seq not in damaged and verify(c, self.journal)]  # fmt: skip
        return manifest.results_missing(mine, manifest.expected(signed, which))


def _batch_of(cell_key: str, name: str, key: str | None) -> tuple[str, str]:
    return ("cell", cell_key) if key is None else ("key", name)


def count(select: Callable[[str, list], list[tuple]], epoch: int) -> Any:
    """How many distinct step identities have a result in ``epoch`` (after a fold)."""
    return select(
        "SELECT count(DISTINCT identity) FROM steps WHERE status = 'ok' AND epoch = ?", [epoch]
    )[0][0]
