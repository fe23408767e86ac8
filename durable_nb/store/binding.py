"""Which journal a signature names: the journal's id, inside every row signature.

One key signs all of a user's journals, so a row signed in one of them would verify in
any other: an ``epoch`` row copied from another notebook's journal (every step of this
one runs again), step results copied from another (replayed as this one's). So each
journal has an id (``meta.journal``: 16 random bytes as hex, made with the journal, its
row signed like any other), named by every row signature
(:func:`durable_nb.trust.sign_fields`) and by the resume plan's seal.

- A copy of the journal file (``cp``) is the same journal: rows move between the two
  unnoticed, as between a journal and an older copy of itself (README, Trust).
- ``durable-nb trust`` and ``durable-nb import`` give the journal a new id, signing
  again for it what they accept: each imported copy is a journal of its own.
- Each cell record's manifest names the id too (``j``, bound by the cell's signature), so
  the id row alone cannot switch the binding off (review B7): when it is missing,
  malformed or not signed, the id named by the newest cell record signed by this user for
  it is the journal's (its row is written again); when the id row is this user's but
  such a cell names another id (the row of another of this user's journals put in its
  place), nothing replays and no step runs in place of a result (as for an epoch not
  signed) until ``durable-nb trust`` gives a new id.
- A journal whose id row is missing, malformed or not signed by this user, and no cell
  record of this user's names its id, gets a new id when it is opened for writing:
  nothing in it verifies until ``durable-nb trust``.
- A journal of schema 5 (whose signatures named no journal) gets its id on its first
  open, after its log is folded: when every record verifies as schema 5 signed it, all
  are signed again for the id; otherwise none is, one line says so, and it needs
  ``durable-nb trust`` once. All or none, because records copied in from another of
  this user's journals verify as schema 5 signed them too: a journal of schema 6 whose
  id row was deleted and schema version set back to 5 must not come out trusted with
  rows planted from an older journal.
"""

from __future__ import annotations

from .. import trust
from . import manifest
from .schema import SCHEMA_VERSION, TABLES, CellRow, MetaRow
from .seal import ID_KEY, SIGNED_ROWS, Sealing, select, sign, verify


class _NotAll(Exception):
    """A record of a journal of schema 5 does not verify: none is signed again."""


class Binding(Sealing):
    """The journal's id: read as it opens, made when it has none of this user's, changed
    by :meth:`rebind` (``durable-nb import``) and :meth:`trust`."""

    _id_restored = False  # the id row was not this user's; signed cells name the id

    def _open_id(self, version: int) -> bool:
        """Set :attr:`id` as the journal opens, before its log is folded; whether it is
        the journal's own (its row well formed and signed by this user for it).

        Schema 5: None (signatures named no journal) until :meth:`_bind`, unless it has
        an id row of this user's (a journal of schema 6 whose unsigned version was set
        back). An id row not this user's: a new id, for which nothing in it is signed.
        """
        found = self._con.execute(select(MetaRow, "WHERE key = ?"), [ID_KEY]).fetchone()
        row = MetaRow._make(found) if found else None
        value = row.value if row else None
        named, self._id_refused, self._id_restored = self._named_id(), None, False
        if type(value) is str and trust.JOURNAL_ID.fullmatch(value) and verify(row, value):
            self.id = value
            if named is not None and named != value:
                self._id_refused = (
                    f"journal {self.path} has the id row of another of your journals (its "
                    "cell records signed by you name another id): no result replays and no "
                    "step runs in their place; restore the journal from a copy, or "
                    + trust.HOW_TO_TRUST.format(target=self._notebook or self.path)
                )
            return True
        if named is not None:  # the id row deleted or changed: the signed cells tell it
            self.id, self._id_restored = named, True
            return False
        self.id = None if version < SCHEMA_VERSION else trust.new_journal_id()
        return False

    def _named_id(self) -> str | None:
        """The journal id named by the newest cell record this user signed for the id it
        names (its manifest's ``j``), or None. Newest first, however many are not signed:
        unsigned rows never hide a signed one."""

        def signed(cell: CellRow) -> bool:
            j = manifest.named(cell)
            return j is not None and bool(trust.JOURNAL_ID.fullmatch(j)) and verify(cell, j)

        cell = self._newest_signed(CellRow, "ORDER BY seq DESC NULLS LAST", [], signed)
        return None if cell is None else manifest.named(cell)

    def _bind(self, version: int, known: bool) -> None:
        """Record the journal's id when it has none of this user's (its log folded): a
        new journal, one of schema 5 (carried over), or one whose id row is missing,
        malformed or another's."""
        if known and version == SCHEMA_VERSION:
            return
        told = None
        if self._id_restored:  # named by this user's signed cells: written again
            self._transaction(lambda: self._write_id(self.id))
            known, self._id_restored = True, False
            told = (
                f"journal {self.path} had lost its id row (deleted or changed): it is "
                "written again from your signed cell records"
            )
        if not known and version < SCHEMA_VERSION:
            try:
                told = self._transaction(self._carry_over)
                known = True
            except _NotAll:  # nothing changed: the journal gets an id, nothing is signed
                told = (
                    f"journal {self.path} was written by an older durable_nb, whose "
                    "signatures named no journal, and holds records not signed by you: none "
                    "is taken as yours now (records copied from another of your journals "
                    "could be among them); "
                    + trust.HOW_TO_TRUST.format(target=self._notebook or self.path)
                )
        if not known:  # a new id, for which nothing here is signed

            def give_id() -> int:
                self._write_id(self.id or trust.new_journal_id())
                [(cells,)] = self._con.execute("SELECT count(*) FROM cells").fetchall()
                return cells

            if self._transaction(give_id) and told is None:
                told = (
                    f"journal {self.path} has no journal id signed by you (deleted, or the "
                    "journal is another user's): none of its records is taken as yours; "
                    + trust.HOW_TO_TRUST.format(target=self._notebook or self.path)
                )
        self._transaction(
            lambda: self._con.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                [str(SCHEMA_VERSION)],
            )
        )
        if told:
            self._warn(told, f"bind:{self.path}")

    def _carry_over(self) -> str | None:
        """Give a journal of schema 5 its id, signing every record again for it; raises
        :class:`_NotAll` at the first that does not verify as schema 5 signed it. What
        to tell (None for a new journal)."""
        new = trust.new_journal_id()
        total = self._resign(None, new, all_or_none=True)
        self._write_id(new)
        if not total:
            return None
        return (
            f"journal {self.path} was written by an older durable_nb: its {total} records, "
            "all signed by you, are now bound to it (a record copied from another journal "
            "no longer verifies here)"
        )

    def _resign(self, old: str | None, new: str, all_or_none: bool = False) -> int:
        """Sign again for the journal ``new`` every record this user signed for ``old``
        (the row part; the content part of one in blob files stays), and the resume plan's
        seal; how many (in the caller's transaction). ``all_or_none``: raise
        :class:`_NotAll` at the first record that does not verify."""
        done, plan, cells = 0, None, []
        for row_type in SIGNED_ROWS:
            out = []
            for batch in self._signed_rows(row_type):
                for row in batch:
                    if row_type is MetaRow and row.key == ID_KEY:
                        continue
                    if not verify(row, old, quick=True):
                        if all_or_none:
                            raise _NotAll
                        continue
                    if row_type is CellRow and manifest.named(row) is not None:
                        row = row._replace(manifest=manifest.renamed(row.manifest, new))
                        cells.append((row[0], row.manifest))
                    if row_type is MetaRow and row.key == "headless":
                        text = trust.unseal(row.value, trust.plan_domain(old))
                        if text is not None:
                            plan = trust.seal(trust.plan_domain(new), text)
                            row = row._replace(value=plan)
                    _, _, content = row.sig.partition(":")
                    sig = sign(row, new)
                    out.append((row[0], f"{sig}:{content}" if content else sig))
            self._update(self._con, TABLES[row_type][1], row_type._fields[0], "sig", out)
            done += len(out)
        if plan is not None:
            self._con.execute("UPDATE meta SET value = ? WHERE key = 'headless'", [plan])
        self._update(self._con, "cells", "exec_id", "manifest", cells)
        return done

    def rebind(self, keep: bool = True) -> int:
        """Give the journal a new id, signing again for it what this user signed for the
        old one (``durable-nb import``: each imported copy is a journal of its own, and
        an export of your own journal still replays); how many records.

        ``keep`` False: nothing is signed again (an export not sealed by this user may
        hold records copied from their own journals: none is taken as theirs).
        """

        def work() -> int:
            new = trust.new_journal_id()
            done = self._resign(self.id, new) if keep else 0
            self._write_id(new)
            return done

        return self._signing_again(work)
