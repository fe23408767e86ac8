"""What a restore did (:class:`Report`), and re-running the cells that made the values
it could not save (the recompute plan: a socket, a generator, a client)."""

from __future__ import annotations

import ast
import re
import symtable
import types
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from typing import Any

import xxhash

from . import codec, graph
from .cells import names_used, restores, writes_files
from .errors import describe
from .runtime import Runtime
from .sharing import ANY_NAME
from .store import VariableRow


@dataclass
class Report:
    """What a restore did, for its one-line summary."""

    seq: int
    #: How the person finds cell ``seq`` in the notebook (``the 3rd code cell ('x = 1')``).
    where: str = ""
    restored: list[str] = field(default_factory=list)
    nbytes: int = 0
    recomputed: list[str] = field(default_factory=list)
    recompute_cells: list[int] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    #: Restored values a re-run cell changed (``w.held.append(x)``), loaded again.
    reloaded: list[str] = field(default_factory=list)
    #: Recomputed name -> the later cells whose code names it: what they did to the value
    #: in place (``ws.add(n)``, ``next(gen)``) is not done again by the re-run.
    used_after: dict[str, list[int]] = field(default_factory=dict)
    #: Re-run cell -> the names it may read as it runs whose values later cells made (a
    #: function defined again): (name, that cell). What it made now may differ.
    newer: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    seconds: float = 0.0

    def __str__(self) -> str:
        parts = [
            f"restored {len(self.restored)} variable{'s' * (len(self.restored) != 1)} "
            f"({self.nbytes / 1e6:.1f} MB) as of cell {self.seq}"
            f"{f', {self.where},' if self.where else ''} in {self.seconds:.2f} s"
        ]
        if self.recomputed:
            cells = ", ".join(map(str, self.recompute_cells))
            parts.append(f"recomputed {', '.join(self.recomputed)} by re-running cell {cells}")
        if self.reloaded:
            parts.append(f"loaded {', '.join(self.reloaded)} again (the re-run changed them)")
        if self.used_after:
            used = " and ".join(f"{n} (cell{'s' * (len(c) > 1)} {', '.join(map(str, c))})"
                                for n, c in self.used_after.items())  # fmt: skip
            them = "them" if len(self.used_after) > 1 else "it"
            parts.append(f"later cells name {used}: what they did to {them} in place, if "
                         "anything, is not done again")  # fmt: skip
        for seq, read in self.newer.items():
            values = ", ".join(f"{n} as of cell {made}" for n, made in read)
            parts.append(f"cell {seq} re-ran with {values}, made after it: what it made now "
                         "may differ from what it made then")  # fmt: skip
        if self.skipped:
            parts.append("skipped " + "; ".join(f"{n} ({why})" for n, why in self.skipped.items()))
        return "; ".join(parts)


def recompute_cells(
    shell: Any,
    rt: Runtime,
    names: dict[str, int],
    entries: dict[str, VariableRow],
    report_: Report,
    bring: Callable[[str], None] | None = None,
    loaded: dict[str, Any] | None = None,
) -> None:
    """Re-run the cells that made the values ``names`` (name -> its cell execution), which
    could not be saved; their steps replay. What each gave goes into ``report_``. A
    restored value a re-run changed in place (``w.held.append(x)``: the live run did that
    once already) is loaded again with ``bring(name)``, its group's members with it (their
    payload dropped from ``loaded``, the loader's: one new value for the group)."""
    ns = shell.user_ns
    saved = {n: ns[n] for n in report_.restored if n in ns}
    changed: set[str] = set()
    cells = sorted(set(names.values()))
    found = {c.seq: (c.cell_key, c.source) for c in rt.journal.cells(cells)}
    # A cell that writes files is never re-run: reopening one for writing truncates it.
    writers = {e.cell_seq for e in entries.values() if e.state == "file"}
    for seq in cells:
        mine = [n for n, s in names.items() if s == seq]
        source = shell.transform_cell(found[seq][1]) if seq in found else ""
        binds = may_bind(source, ns) if seq in found else frozenset()
        if binds:
            # A value first seen after a cell that failed is put on the next cell: running
            # that one again would repeat what it did to restored values, for nothing.
            for n in [n for n in mine if n not in binds]:
                mine.remove(n)
                report_.skipped[n] = (f"cell {seq} does not assign it (the cell that made it "
                                      "may have failed): re-run that cell yourself")  # fmt: skip
            if not mine:
                continue
        if seq not in found:
            why = f"its cell {seq} is not in the journal"
        elif seq in writers or writes_files(source):
            why = f"its cell {seq} writes a file: re-run it yourself"
        elif restores(source):
            why = f"its cell {seq} runs %durable restore: re-run its other lines yourself"
        else:
            watched = {n: _digest(saved[n], ns) for n in (binds or saved)
                       if n in saved and entries[n].state == "saved"}  # fmt: skip
            read = _inputs(found[seq][1], source)
            # What the notebook's functions it names read (one called as the cell runs reads
            # its globals then): not through a name said already (a newer ``f``'s ``np``).
            read |= used_by({n for n in read if not _later(entries.get(n), seq)}, ns)
            newer = sorted((n, entries[n].cell_seq) for n in read if _later(entries.get(n), seq))
            if newer:
                report_.newer[seq] = newer
            with rt.as_cell(found[seq][0]):
                result = shell.run_cell(found[seq][1], store_history=False)
            changed.update(n for n, d in watched.items() if d and _digest(saved[n], ns) != d)
            report_.recompute_cells.append(seq)
            err = result.error_in_exec or result.error_before_exec
            why = f"re-running cell {seq} failed ({describe(err)})" if err else ""
        for n in mine:
            if not why and n in ns:
                report_.recomputed.append(n)
            else:
                report_.skipped[n] = why or f"re-running cell {seq} did not define it"
    # A recomputed cell may rebind saved names: the snapshot's values win.
    for n, value in saved.items():
        ns[n] = value
    made = {n: names[n] for n in report_.recomputed}
    report_.used_after = _used_after(shell, rt, made, report_.seq, report_.recompute_cells)
    if changed and bring is not None and loaded is not None:
        ids = {entries[n].value_id for n in changed}
        again = sorted(n for n in saved if entries[n].value_id in ids)
        for n in again:
            loaded.pop(entries[n].value_id, None)
            report_.restored.remove(n)
            report_.nbytes -= entries[n].nbytes or 0
        for n in again:
            bring(n)
        report_.reloaded = again


def _used_after(shell: Any, rt: Runtime, made: dict[str, int], upto: int,
                re_run: Container[int]) -> dict[str, list[int]]:  # fmt: skip
    """For each recomputed name (-> the cell that made it), the later cells up to ``upto``,
    not re-run now, whose code names it as a variable (a helper function's use is not
    seen; a parameter of the same name is taken for it)."""
    first = min(made.values(), default=upto)
    out: dict[str, list[int]] = {}
    for cell in rt.journal.cells(range(first + 1, upto + 1)) if first < upto else ():
        source = cell.source if type(cell.source) is str else ""
        if cell.seq in re_run or not any(n in source for n in made):  # (most: no parse)
            continue
        for n in sorted(made.keys() & _variables(source, shell.transform_cell)):
            if cell.seq > made[n]:
                out.setdefault(n, []).append(cell.seq)
    return out


def _variables(source: str, transform: Callable[[str], str]) -> set[str]:
    """The notebook globals ``source`` uses: its top level's names, and what its functions
    and classes read as globals (not a parameter, nor a class attribute of that name)."""
    try:
        top = symtable.symtable(transform(source), "<cell>", "exec")
    except Exception:  # (a cell that does not parse used nothing)
        return set()
    found = set(top.get_identifiers())
    for table in _nested(top):
        found.update(s.get_name() for s in table.get_symbols() if s.is_global())
    return found


def _nested(top: symtable.SymbolTable) -> Iterator[symtable.SymbolTable]:
    """The scopes inside ``top`` (its functions, classes, lambdas, comprehensions), at
    every depth."""
    todo = list(top.get_children())
    while todo:
        table = todo.pop()
        yield table
        todo += table.get_children()


def _inputs(raw: str, source: str) -> set[str]:
    """The names re-running a cell (``raw`` as written, ``source`` as Python) may read
    itself: more than it reads (what it can miss: docs/design.md, ``recompute.py``).
    What each statement reads (at its top level, and as globals in the functions, classes
    and generators it makes) but not what an earlier statement of the cell surely bound
    (``f = wrap(f)`` reads ``f``; ``def f`` then ``interactive(f)`` does not; a ``def``
    under an ``if``, a loop or a ``try`` may not run); and the words of a magic's text
    (``%%time``: a string to Python)."""
    read: set[str] = set()
    bound: set[str] = set()
    # A magic's code (``!``'s too) is a string to Python: its words are read.
    words = "get_ipython()" in source and "get_ipython()" not in raw
    try:
        for node in ast.parse(source).body:
            top = symtable.symtable(ast.unparse(node), "<cell>", "exec")
            symbols = top.get_symbols()
            read |= {s.get_name() for s in symbols if s.is_referenced()} - bound
            for table in _nested(top):
                read |= {s.get_name() for s in table.get_symbols()
                         if s.is_global() and s.is_referenced()} - bound  # fmt: skip
            if not isinstance(node, _MAYBE):
                bound |= {s.get_name() for s in symbols if s.is_assigned() or s.is_imported()}
    except Exception:  # not Python, or too deep to read (RecursionError): every word
        words = True
    return read | set(_WORD.findall(raw)) if words else read


def _later(row: VariableRow | None, seq: int) -> bool:
    """Whether ``row``'s value was bound by a cell after ``seq``."""
    return row is not None and row.cell_seq > seq


#: Statements whose bindings may not happen: their test, loop or exception decides.
_MAYBE = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.Try, ast.Match)


#: A Python identifier (ASCII): the words of a magic's text.
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _digest(value: Any, ns: dict[str, Any]) -> str | None:
    """What ``value`` pickles to (a digest), None when it cannot be read."""
    try:
        enc = codec.encode(value, ns)
    except KeyboardInterrupt:  # Ctrl-C: the work under way stops
        raise
    except BaseException:  # its code raised: not watched (or, after the re-run, changed)
        return None
    digest = xxhash.xxh3_128(enc.stream)
    for buffer in enc.buffers:
        digest.update(buffer)
    return digest.hexdigest()


def may_bind(source: str, ns: dict[str, Any]) -> frozenset[str] | set[str]:
    """The names running ``source`` may bind: those it names, and those named by the
    notebook's functions and classes it reaches by name (their ``global`` statements);
    empty when it names ``exec``, ``globals`` and the like, or imports ``*`` (any name)."""
    named = names_used(source, lambda text: text)
    if named & ANY_NAME or ("import" in named and "*" in source):  # (``from m import *``)
        return frozenset()
    try:
        return _reached(named, ns)
    except KeyboardInterrupt:  # Ctrl-C: the work under way stops
        raise
    except BaseException:  # a class of the notebook's raised when read: any name, then
        return frozenset()


def used_by(named: set[str], ns: dict[str, Any]) -> set[str]:
    """What a cell naming ``named`` used, as a snapshot walks it: those, and the names the
    notebook's code they reach uses (a function's, a decorated one's, a partial's, a
    bound method's, one held in a dict...), and so on; ``named`` alone when it names
    ``globals`` and the like."""
    if named & ANY_NAME:
        return named
    out, work = set(named), sorted(named)
    while work:
        name = work.pop()
        if name not in ns:
            continue
        try:
            found = graph.reach(ns[name], ns).names
        except KeyboardInterrupt:  # Ctrl-C: the work under way stops
            raise
        except BaseException:  # its code raised when read: what it reaches is unknown
            continue
        work += sorted(found - out)
        out |= found
    return out


def _reached(named: set[str], ns: dict[str, Any]) -> set[str]:
    out, work = set(named), list(named)
    while work:
        value = ns.get(work.pop())
        codes = []
        if type(value) is types.FunctionType and value.__globals__ is ns:
            codes.append(value.__code__)
        for cls in (value, type(value)):  # a notebook class, or an instance of one
            if issubclass(type(cls), type) and cls.__module__ == "__main__":
                codes += [f.__code__ for a in vars(cls).values() for f in graph.functions_of(a)]
        for code in codes:
            new = graph.code_names(code) - out
            out |= new
            work += new
    return out
