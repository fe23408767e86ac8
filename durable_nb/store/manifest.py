"""What each cell execution wrote, signed in its own record: a deleted record is seen.

A signature proves that a record is this user's, not that every record is still there.
So each cell execution's record carries a manifest (``cells.manifest``, bound by the
cell's signature) of what it wrote:

- ``p``: the cell execution recorded just before it: a deleted cell record leaves a gap;
- ``e``: the epoch it ended in: an ``epoch`` row deleted or set back is seen;
- ``s``: per replay batch (``<epoch>:c:<cell key>``, or ``<epoch>:k:<step name>`` for
  ``key=`` calls), how many completed results it wrote there; each result's ``steps.n``
  (bound by its signature) is its place, 1 to that count, so a missing one is a gap;
- ``v``: how many variable rows it wrote, and a digest of their ids;
- ``j``: the journal's id (:mod:`.binding`): the id row deleted or replaced by another
  journal's is seen (and a deleted one restored) from the newest cell record signed by you.

Results are checked when their batch loads (:mod:`.replay`), variables at restore
(:mod:`.seal`). What a manifest cannot show: the newest records cut off (a journal
truncated after its last cell looks like one whose process died earlier), and the results
of a cell execution that never ended (a crash) after the last one kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii as _quote  # (json's own, in C)
from typing import Any

from .schema import CellRow, StepRow, VariableRow

_MOD = 1 << 128


def batch(cell_key: str, name: str, key: str | None) -> str:
    """The replay batch a completed result is found in (:mod:`.replay`)."""
    return f"c:{cell_key}" if key is None else f"k:{name}"


def entry(epoch: int, batch_: str) -> str:
    """A manifest's name for ``batch_`` in ``epoch``."""
    return f"{epoch}:{batch_}"


def _digest(ids: Iterable[str]) -> tuple[int, int]:
    """(count, sum of 128-bit hashes): a digest of a set that can be built one id at a time."""
    count = total = 0
    for i in ids:
        count += 1
        total += int.from_bytes(hashlib.blake2b(i.encode(), digest_size=16).digest(), "big")
    return count, total % _MOD


def parse(text: object) -> dict[str, Any]:
    """A manifest as written by :class:`Written` (an empty dict for anything else)."""
    if type(text) is not str or len(text) > 1 << 20:
        return {}
    try:
        found = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return found if type(found) is dict else {}


def dump(p: int | None, e: int | None = None, s: dict | None = None,
         v: tuple[int, int] | None = None, j: str | None = None) -> str:  # fmt: skip
    """A manifest as text (``e``, ``s``, ``v`` only for a cell execution that ended;
    ``j``: the journal's id): ``json.dumps(..., sort_keys=True)`` of it, written out here
    for what each cell writes (~10 µs less, ~50 in a kernel between cells: json's encoder
    is Python code, cold by then); json itself for anything else."""
    if not _by_hand(p, e, s, v, j):
        return _dump_json(p, e, s, v, j)
    head = f'"j": {_quote(j)}, "p": {_number(p)}' if j is not None else f'"p": {_number(p)}'
    if e is None:
        return f"{{{head}}}"
    count, total = (v[0], v[1]) if v else (0, 0)
    batches = ", ".join(f"{_quote(k)}: {n}" for k, n in sorted(s.items())) if s else ""
    return f'{{"e": {e}, {head}, "s": {{{batches}}}, "v": [{count}, "{total:032x}"]}}'


def _dump_json(p: int | None, e: int | None, s: dict | None, v: tuple[int, int] | None,
               j: str | None) -> str:  # fmt: skip
    found: dict[str, Any] = {"p": p} if j is None else {"p": p, "j": j}
    if e is not None:
        found.update(e=e, s=s or {}, v=[v[0], f"{v[1]:032x}"] if v else [0, f"{0:032x}"])
    return json.dumps(found, sort_keys=True)


def _by_hand(p: Any, e: Any, s: Any, v: Any, j: Any) -> bool:
    """Whether :func:`dump` writes these out itself: exact ints and strings, counts of
    strings to ints (anything else, json writes as it always did)."""
    if not (p is None or type(p) is int) or not (j is None or type(j) is str):
        return False
    return e is None or (
        type(e) is int
        and (not s or all(type(k) is str and type(n) is int for k, n in s.items()))
        and (not v or (type(v[0]) is int and type(v[1]) is int))
    )


def _number(n: int | None) -> str:
    return "null" if n is None else str(n)


class Written:
    """What this process wrote, by cell execution: the journal fills in manifests and
    result places (``steps.n``) from it as it writes."""

    def __init__(self, newest: int) -> None:
        self._newest = newest  # the newest cell execution recorded so far
        self._prev: dict[int, int | None] = {}
        self._results: dict[int, dict[str, int]] = {}
        self._variables: dict[int, list[int]] = {}

    def step(self, row: StepRow) -> StepRow:
        """``row`` with its place in its batch, when it is a completed result."""
        if row.status != "ok":
            return row._replace(n=None)
        counts = self._results.setdefault(row.seq, {})
        name = entry(row.epoch, batch(row.cell_key, row.name, row.key))
        counts[name] = counts.get(name, 0) + 1
        return row._replace(n=counts[name])

    def variable(self, row: VariableRow) -> None:
        count, total = _digest([row.entry_id])
        found = self._variables.setdefault(row.seq, [0, 0])
        found[0] += count
        found[1] = (found[1] + total) % _MOD

    def undo(self, rows: Iterable[Any]) -> None:
        """Take back what :meth:`step` and :meth:`variable` counted of placed ``rows``
        whose record never reached the log (a manifest counts only what is there)."""
        for row in rows:
            if type(row) is VariableRow:
                count, total = _digest([row.entry_id])
                found = self._variables[row.seq]
                found[0] -= count
                found[1] = (found[1] - total) % _MOD
            elif type(row) is StepRow and row.n is not None:
                self._results[row.seq][
                    entry(row.epoch, batch(row.cell_key, row.name, row.key))
                ] -= 1

    def cell(self, row: CellRow, epoch: int, journal: str | None = None) -> CellRow:
        """``row`` with its manifest: the cell execution before it, the journal's id,
        and, once it ended, what it wrote."""
        if row.seq not in self._prev:
            given = parse(row.manifest)  # a record of an earlier process written again
            if "p" in given:
                self._prev[row.seq] = given["p"] if type(given["p"]) is int else None
            else:
                self._prev[row.seq] = self._newest if row.seq > self._newest else None
            self._newest = max(self._newest, row.seq)
        prev = self._prev[row.seq]
        if row.status == "running":
            return row._replace(manifest=dump(prev, j=journal))
        v = self._variables.get(row.seq, [0, 0])
        text = dump(prev, epoch, self._results.get(row.seq, {}), (v[0], v[1]), journal)
        return row._replace(manifest=text)


# -- checks ---------------------------------------------------------------------------


def expected(cells: Iterable[CellRow], name: str) -> dict[int, int]:
    """Cell execution -> how many results its (signed) manifest says it wrote to ``name``."""
    out = {}
    for c in cells:
        count = parse(c.manifest).get("s", {}).get(name) if c.manifest else None
        if type(count) is int:
            out[c.seq] = count
    return out


def results_missing(rows: Iterable[StepRow], counts: dict[int, int]) -> bool:
    """Whether signed results of one batch are missing: a place with no result before the
    last one kept, or fewer than a manifest says (``counts``: :func:`expected`)."""
    places: dict[int, set[int]] = {}
    for r in rows:
        if type(r.n) is int:
            places.setdefault(r.seq, set()).add(r.n)
    for found in places.values():
        if len(found) != max(found) or min(found) != 1:
            return True
    return any(len(places.get(seq, ())) < n for seq, n in counts.items())


def variables_missing(rows: Iterable[tuple[int, str]], cells: Iterable[CellRow]) -> list[int]:
    """The cell executions whose variable rows (``(seq, entry_id)``) are not those their
    manifest names."""
    by_seq: dict[int, list[str]] = {}
    for seq, entry_id in rows:
        by_seq.setdefault(seq, []).append(entry_id)
    bad = []
    for c in cells:
        v = parse(c.manifest).get("v")
        if type(v) is not list or len(v) != 2:
            continue
        count, total = _digest(by_seq.get(c.seq, ()))
        if [count, f"{total:032x}"] != v:
            bad.append(c.seq)
    return bad


def named(c: CellRow) -> str | None:
    """The journal id a cell record's manifest names (``j``), if it is one."""
    j = parse(c.manifest).get("j")
    return j if type(j) is str else None


def renamed(text: object, journal: str) -> object:
    """A manifest ``text`` naming the journal ``journal`` (one naming none: unchanged)."""
    found = parse(text)
    if "j" not in found:
        return text
    return json.dumps({**found, "j": journal}, sort_keys=True)


def gaps(cells: Iterable[CellRow], seqs: set[int]) -> list[int]:
    """Cell executions named as the one before another (``p``) that are not in ``seqs``."""
    missing = []
    for c in cells:
        p = parse(c.manifest).get("p")
        if type(p) is int and p > 0 and p not in seqs:
            missing.append(p)
    return missing


def rebuild(cells: list[CellRow], epoch: int, results: dict[int, dict[str, int]],
            variables: dict[int, list[str]],
            journal: str | None = None) -> dict[str, str]:  # fmt: skip
    """exec_id -> the manifest of each cell execution (by seq) as the journal is now
    (``durable-nb trust``): what is there is what is accepted."""
    out, prev = {}, 0
    for c in sorted((c for c in cells if type(c.seq) is int), key=lambda c: c.seq):
        old = parse(c.manifest)
        if c.status in ("running", "crashed"):
            out[c.exec_id] = dump(prev, j=journal)
        else:
            e = old.get("e") if type(old.get("e")) is int and old["e"] <= epoch else epoch
            out[c.exec_id] = dump(prev, e, results.get(c.seq, {}),
                                  _digest(variables.get(c.seq, ())), journal)  # fmt: skip
        prev = c.seq
    return out
