"""Namespace snapshots: change detection after each cell, incremental save, restore.

What cannot be saved is recorded with the cell that defined it (the recompute plan).

Which variables a cell may have changed (the rule; a cell costs what it touches):

1. the names the cell's code mentions (not a keyword's, ``f(options=1)``, when the scan of
   the text for it costs less than the check), and every variable bound to a new object; but
   not what is proven unchanged (:class:`sharing.Settled`): a library's module, class or
   function saved by name, a list, dict or set of numbers and strings still holding the
   very objects it held (:class:`unchanged.Same`, one pass in C);
2. everything reachable (:mod:`durable_nb.graph`) from those values; the variables named
   by the code of every notebook function, method or class reached (closures, defaults,
   decorators, bound methods, callbacks held in data: a function called by name can
   change a variable the cell never names), transitively; and the data of the notebook's
   own helper modules reached (``mylib.add(1)`` can change ``c = mylib.cache``), and
   what an instance's methods can change there; a class nested in a variable's class is
   that variable's data; builtins' iterators reach what they iterate;
3. every variable whose value shared a data object with one of those, before or after
   the cell (an index of object ids from earlier walks): a change made through one
   alias shows in all, so they are compared, and saved together so identity survives;
4. every variable whose payload refers by name to a class or function that was rebound;
5. all variables (but those proven unchanged) after a cell that uses ``get_ipython``,
   ``exec``, ``eval``, ``globals``, ``__globals__`` (:data:`sharing.ANY_NAME`), or reaches a
   notebook function that does; while the namespace is tiny, 32 saved variables a cell,
   in turn, fewer when their checks take longer than ~0.25 ms a cell
   (:mod:`durable_nb.sweep`). While that covers every saved variable, a widget (a value
   holding a kernel object, recorded for recompute) is not walked: what it shares or its
   callbacks change is checked then.

Each is pickled and compared with what the journal holds; only what differs is written.
Not seen: changes made outside cells (threads, widget callbacks run between cells) to a
variable no later cell reaches, and changes to state that lives in libraries or the
kernel (their objects are not the notebook's data). Saved at the next cell reaching them.
"""

from __future__ import annotations

import enum
import importlib
import json
import sys
import time
import types
from dataclasses import replace
from functools import partial
from typing import Any

import xxhash

from . import classes, codec, graph, openfiles, owner, sharing
from .blobs import BLOB_THRESHOLD, chunk_names
from .cells import keyword_only, label, names_used, variables
from .errors import (
    JournalError,
    JournalUnwritable,
    NamespaceNotSaved,
    RestoreError,
    describe,
)
from .known import Encoding, Known
from .marshaled import gc_paused
from .payloads import Loader
from .prints import Print, small
from .recompute import Report, recompute_cells, used_by
from .refusals import STOPPED, Refusals, was_stopped
from .runtime import Runtime
from .store import UNSAVED, PayloadRow, VariableRow
from .sweep import SWEEP_BYTES, SWEEP_NAMES, Sweep  # noqa: F401  (tests set them)
from .unchanged import by_name

#: A variable bigger than this is recorded for recompute instead of saved.
DEFAULT_MAX_BYTES = 4 << 30
#: How a value whose reading raised in the notebook's code is recorded: for recompute.
_UNREAD = "could not be read, the notebook's code raised "
#: Values whose pickle :class:`Print` can tell unchanged (dill pickles a function ~1 ms).
_DEFINITIONS = (types.FunctionType, type, types.BuiltinFunctionType)


class Snapshots:
    """Records the user namespace after each successful cell and restores it."""

    def __init__(self, shell: Any, rt: Runtime, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.shell, self.rt, self.max_bytes = shell, rt, max_bytes
        self.known: dict[str, Known] = {}
        self.ignored: set[str] = set(self._meta_json("ignore", []))
        self._pending: set[str] = set()  # names touched by cells not yet snapshotted
        self._forgotten: dict[str, tuple[int | None, int]] = {}  # saved before a reset: id, cell
        #: After a restore: the next save writes a row for every name, deletions included.
        self._rebase, self._restoring = False, False  # (restoring: while a restore runs)
        self._stored: set[str] | None = None  # value ids in the journal
        self._written: tuple[Any, set[str]] = (None, set())  # a journal, ids written to it
        self.sweep = Sweep()  # the safety net (sweep.py)
        self._found = sharing.Reached()  # what this cell reached: kernel objects, pickles
        self._groups: list[list[str]] = []  # its names that share, as groups (sharing.groups)
        self._contents: dict[str, bytes] = {}  # value id -> its stream, put in blob files
        #: names -> their functions' or classes' print and pickle: unchanged, not pickled again.
        self._pickled: dict[tuple[str, ...], tuple[Print, codec.Encoded | Encoding]] = {}
        self.refusals = Refusals()  # values not pickled again while the same (refusals.py)
        self._named: dict[str, Any] = {}  #: names -> a library's object saved by name (Settled)

    # -- after each cell ----------------------------------------------------------

    def after_cell(self, source: str, success: bool) -> None:
        """Save what the cell changed (only after a successful cell).

        When the save does not complete, the cell's end record says so (no restore
        stops there) and the next successful cell saves the namespace whole.
        """
        try:
            self._after_cell(source, success)
        except BaseException as exc:
            self.rt.cell.unsaved = describe(exc)
            raise

    def _after_cell(self, source: str, success: bool) -> None:
        named = names_used(source, self.shell.transform_cell)
        costly = {n for n in named if (k := self.known.get(n)) and (k.state == "recompute"
                  or k.nbytes >= 16 << 10 or k.took >= 50e-6)}  # fmt: skip
        self._pending |= named - keyword_only(source, costly) if costly else named
        if not success or not self.rt.journaling:
            return
        accessed, self._pending = self._pending, set()
        if self.refusals.any_stopped:  # a save the person stopped: tried again once used
            self.refusals.used(used_by(accessed, self.shell.user_ns))
        ns = variables(self.shell.user_ns, self.shell.user_ns_hidden, self.ignored)
        touched = {n for n, v in ns.items() if n not in self.known or self.known[n].obj_id != id(v)}
        bound = {n for n in touched if self._forgotten.get(n, (0,))[0] != id(ns[n])}  # made here
        gone = (self.known.keys() | self._forgotten.keys()) - ns.keys()
        settled = sharing.Settled(self.known, ns, self._named)  # neither walked nor pickled
        vouch = self.sweep.runs(sum(k.nbytes for k in self.known.values()))
        if accessed & sharing.ANY_NAME:  # every variable re-checked: widgets need no walk
            touched, settled.kernel = set(ns), True
        else:
            changed = touched | gone  # payloads naming a rebound class or function: again
            touched |= {n for n in accessed & ns.keys() if n not in settled}
            if changed:
                touched.update(n for n, k in self.known.items() if k.refs and k.refs & changed)
            if vouch:
                # The safety net: saved values are re-checked (a recomputed one, a widget, is
                # made again by its cell anyway); one a :class:`Same` holds to is not pickled.
                saved = sorted(n for n, k in self.known.items() if k.state == "saved"
                               and not (k.same and n in ns and k.same.holds(ns[n]))
                               and n not in settled)  # fmt: skip
                spare = partial(sharing.widget_walks, ns, touched, self.sweep.kernel_walk)
                saved, whole = self.sweep.pick(saved, touched, spare)
                settled.kernel = whole
                touched.update(saved)
        seq = self.rt.cell.seq
        rows: list[VariableRow | PayloadRow] = []
        changes: dict[str, Known | None] = {}
        try:
            with self.rt.journal.blobs.undone_on_error():  # a failed snapshot's chunks
                self._save(ns, touched, rows, changes, settled, vouch)
            for name in sorted(gone):
                changes[name] = None
                rows.append(VariableRow(f"{seq}:{name}", seq, name, "deleted", None, None, seq,
                                        0, None))  # fmt: skip
            if self._rebase:  # what a restore set, as of this cell (no payload again)
                for name in sorted(self.known.keys() - changes.keys() - gone):
                    k = self.known[name]
                    rows.append(VariableRow(f"{seq}:{name}", seq, name, k.state, k.value_id,
                                            k.item, k.cell_seq, k.nbytes, k.detail))  # fmt: skip
            self._write(rows)
        except (OSError, JournalError) as exc:
            self.reset({n: (id(ns[n]), seq) for n in bound})
            self.rt.cell.unsaved = describe(exc)
            self.rt.step_aside(exc if isinstance(exc, JournalError) else
                               JournalUnwritable.from_cause(str(self.rt.path), exc))  # fmt: skip
            return
        except BaseException:  # what reached the journal is unknown: the next cell saves all
            self.reset({n: (id(ns[n]), seq) for n in bound})
            raise
        self.refusals.prune(ns)
        for key in [k for k in self._pickled if not ns.keys() >= set(k)]:
            del self._pickled[key]
        # Names rebound to what is no definition: their print and pickle are let go.
        for key in [k for k in self._pickled if not any(isinstance(ns[n], _DEFINITIONS)
                                                        for n in k)]:  # fmt: skip
            del self._pickled[key]
        self._forgotten, self._rebase = {}, False
        for name, known in changes.items():
            self.known.pop(name, None)
            if known is not None:
                self.known[name] = known
            else:
                self._named.pop(name, None)
        written = [row.value_id for row in rows if isinstance(row, PayloadRow)]
        if self._written[0] is not self.rt.journal:
            self._written = (self.rt.journal, set())
        self._written[1].update(written)
        if self._stored is not None:
            self._stored.update(written)
        if vouch:  # what its checks cost, beside the time since the last, sets the next window
            self.sweep.took(self.sweep.spent, self.sweep.since())

    def reset(self, bound: dict[str, tuple[int, int]] | None = None) -> None:
        """Forget what was saved: the next snapshot saves every variable again (and records
        the deletion of those gone by then); ``bound``: what the failed cell bound, by then."""
        saved = {n: (k.obj_id, k.cell_seq) for n, k in self.known.items()}
        self._forgotten |= saved | (bound or {})
        self.known.clear()
        self._named.clear()
        self._found = sharing.Reached()  # a failed save's pickles and Sames (review6 F-E)
        self._stored = None

    def _save(self, ns: dict[str, Any], touched: set[str], rows: list, changes: dict,
              settled: sharing.Settled | None = None, vouch: bool = True) -> None:  # fmt: skip
        if not touched:  # a cell that only displays or prints: nothing to walk or pickle
            self._found = sharing.Reached()
            return
        seq = self.rt.cell.seq
        shares = self._sharing(ns, touched, settled, vouch)
        results: dict[str, Encoding] = {}
        self.sweep.charge_each(self._found.seconds, self._found.kernel)
        again: set[str] | None = None  # (all, the first time)
        for _ in range(3):  # (a circle whose group cannot be one payload stays apart)
            for group in classes.bases_first(self._groups, ns):
                if again is None or again & set(group):
                    with self.sweep.timing(group):
                        results.update(self._encode_group(group, ns, shares))
            # What the pickles name besides what the walk saw (an annotation, a class saved
            # by value's data): payloads naming each other so are one too, pickled again.
            refs = {n: r.refs for n, r in results.items()}
            if not (again := sharing.tie(self._found, self.known, refs, ns, self._groups)):
                break
            self._groups = sharing.groups(shares)
        for name, res in sorted(results.items()):
            if res.state in ("saved", "module") and by_name(ns[name]):
                self._named[name] = ns[name]
            else:
                self._named.pop(name, None)
            k = self.known.get(name)
            rebound = k is None or k.obj_id != id(ns[name])
            if not rebound and (k.value_id, k.item) == (res.value_id, res.item):
                k.shares, k.refs = res.shares, res.refs  # unchanged; what it reaches may not be
                found = self._found
                k.deps = {*found.deps.get(name, k.deps), *res.refs}
                k.watch = found.watch.get(name, k.watch)
                k.took = found.seconds.get(name, k.took)
                if res.state == "saved" and not (k.same and k.same.holds(ns[name])):
                    k.same = self._found.proven(ns[name], res.nbytes < self.sweep.bytes)
                continue
            if res.encoded is not None:
                self._store(res, rows)
            was = (k.obj_id, k.cell_seq) if k else self._forgotten.get(name, (None, seq))
            cell_seq = was[1] if was[0] == id(ns[name]) else seq
            small = res.state == "saved" and res.nbytes < self.sweep.bytes
            same = self._found.proven(ns[name], small)
            changes[name] = Known(id(ns[name]), res.state, res.value_id, res.item, cell_seq,
                                  res.nbytes, res.shares, res.refs, res.detail, same,
                                  self._found.seconds.get(name, 0.0),
                                  {*self._found.deps.get(name, ()), *res.refs},
                                  self._found.watch.get(name, {}))  # fmt: skip
            rows.append(VariableRow(f"{seq}:{name}", seq, name, res.state, res.value_id,
                                    res.item, cell_seq, res.nbytes, res.detail))  # fmt: skip
        self._found.plain, self._found.copies = {}, {}  # no pickle or item kept past the cell

    def _sharing(self, ns: dict[str, Any], touched: set[str], settled: sharing.Settled | None,
                 vouch: bool) -> dict[str, set[int]]:  # fmt: skip
        """What each name the cell may have changed reaches (:class:`sharing.Reached`); the
        ``settled`` names are not walked (:class:`sharing.Settled`), nor, when every saved
        variable is re-checked, values holding a kernel object at once (a new widget)."""
        look = settled is not None and settled.kernel
        found = self._found = sharing.Reached.of(
            ns, self.shell.user_ns, self.known, touched, settled or frozenset(), look, vouch,
            self.sweep.clock, settled and settled.proven)  # fmt: skip
        # Payloads that would name each other in a circle are one (sharing.cycles); their
        # names not walked yet are walked first, and each is tied to the others' objects,
        # so the next cell touching one checks them all again (as shared objects do).
        grouped = self._groups = sharing.groups(found.keys)
        while (
            more := sharing.tie(found, self.known, {}, ns, grouped, tie=False) - found.keys.keys()
        ):
            walked = sharing.Reached.of(ns, self.shell.user_ns, self.known, more,
                                        sharing.Either(found.keys, settled or frozenset()),
                                        look, vouch, self.sweep.clock)  # fmt: skip
            found.merge(walked)
            grouped = self._groups = sharing.groups(found.keys)
            if not walked.keys:  # (none could be walked: settled)
                break
        if sharing.tie(found, self.known, {}, ns, grouped):
            self._groups = sharing.groups(found.keys)
        return found.keys

    def _encode_group(self, group: list[str], ns: dict, shares: dict) -> dict[str, Encoding]:
        """Variables that share objects are saved in one payload, so identity survives;
        when one of them cannot be saved, the others are, together (else each apart)."""
        found, stopped = self._found, self.refusals.stopped_alone
        unsaved = {n for n in group if found.kernel.get(n) or n in found.unread}
        held = {n for n in group if n not in unsaved and stopped(n, ns[n])}
        if held and len(held) + len(unsaved) < len(group):
            # A member pickled runs a held-back one's code anyway: all together (review64 M2)
            self.refusals.used(held)
            held = set()
        if len(group) > 1 and not unsaved and not held:
            if (res := self._together(group, ns, shares)) is not None:
                return res
        out = {}
        for name in group:
            if found.kernel.get(name):  # pickle would fail, and dill would walk the kernel
                why = f"{sharing.HOLDS_KERNEL}{found.kernel[name]}: re-running its cell makes it"
                out[name] = Encoding("recompute", why)
            elif name in found.unread:
                out[name] = Encoding("recompute", f"{_UNREAD}{found.unread[name]}")
            else:
                value = found.copy_of(ns[name])
                out[name] = self._read(value, (value,), found.plain.get(name), (name,))
            out[name].shares = shares[name]
        saved = [n for n in group if out[n].state == "saved"]
        if 1 < len(saved) < len(group):
            out.update(self._together(saved, ns, shares) or {})
        return out

    def _together(self, group: list[str], ns: dict, shares: dict) -> dict[str, Encoding] | None:
        """``group`` saved as one payload (None when it cannot be)."""
        values = self._found.members(group, ns)  # (what a Same read: its copy)
        res = self._read(values, values, None, tuple(group))
        if res.state != "saved":
            return None
        # Named by its members too: equal groups are two payloads. Stored by the first.
        res.value_id = xxhash.xxh3_128_hexdigest(f"{res.value_id}:{','.join(group)}".encode())
        return {name: replace(res, encoded=res.encoded if i == 0 else None, item=i,
                              shares=shares[name]) for i, name in enumerate(group)}  # fmt: skip

    def _read(self, value: Any, members: tuple, enc: codec.Encoded | None,
              names: tuple[str, ...]) -> Encoding:  # fmt: skip
        """:meth:`_encode`, or recompute when the notebook's code it runs raises (a
        ``__reduce__`` or a property): one value is lost, never the snapshot."""
        try:
            return self._encode(value, members, enc, names)
        except KeyboardInterrupt as exc:  # Ctrl-C: the work under way stops, not done again
            self.refusals.stop(names, members, Encoding("recompute", STOPPED), exc)
            raise
        except BaseException as exc:
            return Encoding("recompute", f"{_UNREAD}{describe(exc)}")

    def _encode(self, value: Any, members: tuple, enc: codec.Encoded | None = None,
                names: tuple[str, ...] = ()) -> Encoding:  # fmt: skip
        """How ``value`` is recorded: saved (with its payload), module, file or recompute;
        ``enc``: its pickle when made already (plain data); ``names``: its variables."""
        if enc is None:
            got = self._pickle(value, members, names)
            if isinstance(got, Encoding):
                return got
            enc = got
        nbytes = len(enc.stream) + sum(b.nbytes for b in enc.buffers)
        if nbytes > self.max_bytes:
            return Encoding("recompute", f"larger than the {self.max_bytes / 1e9:g} GB limit")
        chunks = [chunk_names(b) for b in enc.buffers]
        digest = xxhash.xxh3_128(enc.stream)
        for names in chunks:
            digest.update("".join(names).encode())
        return Encoding("saved", None, digest.hexdigest(), nbytes, enc, chunks, refs=enc.refs)

    def _pickle(self, value: Any, members: tuple, names: tuple[str, ...] = ()
                ) -> codec.Encoded | Encoding:  # fmt: skip
        """``value``'s pickle, or how it is recorded instead (module, file, recompute)."""
        if issubclass(type(value), types.ModuleType):  # type(): a __class__ is user code
            name = getattr(value, "__name__", None)
            if type(name) is not str or sys.modules.get(name) is not value:
                # ``types.ModuleType('json')`` made in a cell: importing json is no restore
                return Encoding("recompute", "a module not imported by its name")
            return Encoding("module", name)
        if openfiles.abc_file(type(value)):  # (io's ABC: a class only registered with it)
            mode = str(getattr(value, "mode", ""))
            where = f"{getattr(value, 'name', '?')}, mode {mode!r}"
            if value.closed:
                return Encoding("file", f"closed: {where}")
            writable = any(c in mode for c in "wax+")
            return Encoding("file" if writable else "recompute", where)
        if any(issubclass(type(m), enum.EnumMeta) and m.__module__ == "__main__" for m in members):
            return Encoding("recompute", "an Enum class is made again by its cell")
        np = sys.modules.get("numpy")  # never getattr on any value: a Mock grows a child
        if np is not None and issubclass(type(value), np.ndarray) and value.nbytes > self.max_bytes:
            return Encoding("recompute", f"larger than the {self.max_bytes / 1e9:g} GB limit")
        ns, fresh = self.shell.user_ns, None
        if names and any(issubclass(type(m), _DEFINITIONS) for m in members):
            # Its print holds, or equals a new one (kept for next time): its pickle is the same.
            if (last := self._pickled.get(names)) is None or not last[0].holds(value, ns, members):
                fresh = Print(value, ns, members)
            if last is not None and (fresh is None or last[0] == fresh):
                self._pickled[names] = (last[0] if fresh is None else fresh, last[1])
                return replace(last[1]) if isinstance(last[1], Encoding) else last[1]
        if (refused := self.refusals.get(names, members)) is not None:  # (refusals.py)
            return replace(refused)
        try:
            got: codec.Encoded | Encoding = codec.encode(value, ns, members)
        except codec.Unserializable as exc:
            got = Encoding("recompute", str(exc))
            if names and graph.kind(type(value)) == graph.SKIP:  # a library's
                self.refusals.refuse(names, members, got)
        if fresh is not None and fresh.parts is not None and small(got):
            self._pickled[names] = (fresh, got)
        return got

    def _store(self, res: Encoding, rows: list) -> None:
        """Write a saved value's chunks and queue its payload row (once per content)."""
        if res.value_id in self._stored_ids():
            return
        enc, blobs = res.encoded, self.rt.journal.blobs
        for buf, names in zip(enc.buffers, res.chunks, strict=True):
            blobs.put_chunks(buf, names)
        stream, stream_chunks = enc.stream, None
        if len(stream) >= BLOB_THRESHOLD:
            stream_chunks = json.dumps([len(stream), blobs.put_chunks(stream)])
            self._contents[res.value_id] = stream  # signed from memory, not read back
            stream = None
        sizes = [b.nbytes for b in enc.buffers]
        buffers = json.dumps([[n, names] for n, names in zip(sizes, res.chunks, strict=True)])
        rows.append(PayloadRow(res.value_id, enc.codec, res.nbytes, stream, stream_chunks,
                               buffers))  # fmt: skip

    def _write(self, rows: list[VariableRow | PayloadRow]) -> None:
        contents, self._contents = self._contents, {}
        if rows and self.rt.journal is not None:
            # With the cell's end record, as one log record (Runtime.hold): no start record.
            self.rt.hold([(row, contents.get(row.value_id) if type(row) is PayloadRow else None)
                          for row in rows], self._unwritten)  # fmt: skip

    def _unwritten(self) -> None:
        """The rows :meth:`_write` handed over never reached the journal: save all again."""
        self.reset()
        self._written = (None, set())

    def read_ahead(self) -> None:
        """Read what the first save needs from the journal (in its opening thread)."""
        if self.rt.journaling:
            self._stored_ids()

    def _stored_ids(self) -> set[str]:
        if self._stored is None:
            # No fold: the open folded earlier sessions' records; this one's are _written.
            journal, written = self._written
            self._stored = self.rt.journal.payload_ids(fold=False)
            if journal is self.rt.journal:
                self._stored |= written
        return self._stored

    # -- settings -----------------------------------------------------------------

    def ignore(self, names: list[str], remove: bool = False) -> None:
        """Leave ``names`` out of snapshots (``remove``: take them back in)."""
        self.ignored = self.ignored - set(names) if remove else self.ignored | set(names)
        for name in names:
            self.known.pop(name, None)
        if self.rt.journal is not None:
            self.rt.write_meta("ignore", json.dumps(sorted(self.ignored)))

    def _meta_json(self, key: str, default: Any) -> Any:
        journal = self.rt.journal  # (a value not signed by this user reads as None: ignored)
        value = None if journal is None else journal.trusted_meta(key)
        return default if value is None else json.loads(value)

    # -- restore ------------------------------------------------------------------

    def restore(self, at: int | None = None) -> Report:
        """Bring the namespace back as it was after cell execution ``at`` (default: last)."""
        if self._restoring:  # a cell a restore re-runs (to recompute a value) restores
            raise RestoreError(
                "a restore cannot run while a restore re-runs the cells that made values it "
                "could not save; run it in a cell of its own"
            )
        self._restoring = True
        try:
            return self._restore(at)
        finally:
            self._restoring = False

    def _restore(self, at: int | None) -> Report:
        journal = self.rt.journal
        t0 = time.perf_counter()
        asked = at
        # As of the last cell up to ``at`` that ended ok and saved: the namespace then.
        at = journal.last_ok_seq(upto=at)
        # A cell whose records damage in the log lost: the namespace as of the cell before
        # it, said as such; asked for a later one (Resume, durable-nb run), refused.
        lost = journal.rows_lost_upto(at) or (asked and journal.lost_before(asked))
        if lost:
            before = journal.last_ok_seq(upto=lost - 1)
            if asked is not None:
                raise NamespaceNotSaved(lost, "its records were lost to damage in the log", before)
            at = before
        rows = journal.variables_as_of(at, without=owner.foreign_runs(journal, self.rt.source),
                                       deleted=True)  # fmt: skip
        # Nothing another user wrote (or deleted) is run, imported or given a name before
        # it is trusted; then whose work each cell is can be relied on.
        journal.check_restorable(rows.values(), at)
        owner.check(journal, at, self.rt.source)
        unsaved = journal.unsaved_as_of(at if asked is None else asked)
        if unsaved is not None:
            seq, why, before = unsaved
            raise NamespaceNotSaved(seq, why.removeprefix(UNSAVED), before)
        entries = {n: r for n, r in rows.items() if n not in self.ignored and r.state != "deleted"}
        report_ = Report(seq=at, where=self._where(at))
        loader = Loader(journal, [e.value_id for e in entries.values() if e.state == "saved"])
        ns = self.shell.user_ns
        recompute: dict[str, int] = {}
        done: set[str] = set()

        def bring(name: str) -> None:
            """Restore ``name`` (first the globals its payload names: ``resolve``)."""
            done.add(name)
            e = entries[name]
            try:
                if e.state == "saved":
                    value = loader.load(e.value_id, resolve, share=e.item is not None)
                    ns[name] = value if e.item is None else value[e.item]
                    report_.nbytes += e.nbytes or 0
                elif e.state == "module":
                    ns[name] = importlib.import_module(e.detail)
                elif e.state == "file":
                    report_.skipped[name] = f"a file ({e.detail}): re-run its cell yourself"
                    return
                else:
                    recompute[name] = e.cell_seq
                    return
            except KeyboardInterrupt:  # Ctrl-C: the work under way stops
                raise
            except BaseException as exc:  # (a __setstate__ raising SystemExit too: one name lost)
                report_.skipped[name] = describe(exc)
                return
            report_.restored.append(name)

        def resolve(name: str) -> Any:
            if name not in done and name in entries:
                bring(name)
            return ns[name]

        try:
            with gc_paused():
                for name in loader.order(sorted(entries), lambda n: entries[n].value_id):
                    if name not in done:
                        bring(name)
        finally:
            loader.close()
        if recompute:
            recompute_cells(self.shell, self.rt, recompute, entries, report_, bring, loader.loaded)
            # A payload naming a recomputed class (an Enum) loads once that class is back.
            for name in [n for n in report_.skipped if entries[n].state == "saved"]:
                del report_.skipped[name]
                bring(name)
        for name in report_.restored + report_.recomputed:
            if name in ns:
                e = entries[name]
                # Loaded alone, a payload made objects nothing else holds (what it names is not
                # in it): walked once a cell touches it. Not after re-run cells, nor in a group.
                alone = not recompute and e.state == "saved" and e.item is None
                walked = graph.Reach() if alone else sharing.restored(ns[name], ns)
                refs = loader.refs.get(e.value_id, frozenset())  # (all watched till walked)
                names, watch = {*refs, *walked.deps}, {**dict.fromkeys(refs), **walked.watch}
                self.known[name] = Known(id(ns[name]), e.state, e.value_id, e.item, e.cell_seq,
                                         e.nbytes or 0, walked.keys, refs, e.detail,
                                         deps=names, watch=watch)  # fmt: skip
                if was_stopped(e.detail):  # made again by its cell: not saved till used
                    stopped = Encoding("recompute", STOPPED)
                    self.refusals.refuse((name,), (ns[name],), stopped, stopped=True)
        # The journal's rows are not what the namespace holds now: the next save says all.
        self._rebase, self._named = True, {}
        self._forgotten.update(dict.fromkeys(journal.live_names(), (None, 0)))
        report_.seconds = time.perf_counter() - t0
        return report_

    def _where(self, seq: int) -> str:
        """How the person finds cell execution ``seq`` (journal numbers match no prompt)."""
        if not (found := self.rt.journal.cells([seq])):
            return ""
        return label({"cell_id": found[0].cell_id, "source": found[0].source}, self.rt.source)

    def interrupted(self) -> dict[str, Any] | None:
        """The last recorded cell execution, if it crashed or was interrupted."""
        journal = self.rt.journal
        found = journal.interrupted_cell(self.rt.run_id) if journal is not None else None
        if found is None:
            return None
        c = found.cell
        return dict(seq=c.seq, cell_id=c.cell_id, key=c.cell_key, source=c.source or "",
                    started=c.started, status=c.status, error=c.error or found.step_error,
                    steps_done=found.steps_done,
                    own=owner.foreign(journal, c.seq, self.rt.source) is None)  # fmt: skip

    def resume(self, cell: dict[str, Any], name: str | None = None) -> Any:
        """Restore the namespace as of the cell before ``cell``, then re-run ``cell``.

        Its completed steps replay from the journal; the rest run. ``name`` is how the
        person finds the cell (``the 3rd code cell ('x = 1')``); its output follows a
        heading that says where it comes from.
        """
        owner.check(self.rt.journal, cell["seq"], self.rt.source)
        name = name or f"cell {cell['seq']}"
        report_ = self.restore(at=cell["seq"] - 1)
        print(f"durable_nb: {report_}")
        print(f"durable_nb: re-running {name}; completed steps replay")
        print(f"──── output of {name}, resumed here ────", flush=True)
        with self.rt.as_cell(cell["key"]):
            return self.shell.run_cell(cell["source"], store_history=False, cell_id=cell["cell_id"])
