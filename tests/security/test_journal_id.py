"""Review F2/F3 (issue 11): a signature names its journal, so records moved between two of
Bob's own journals are not his in the other. One user, one HOME: Bob's notebooks run in
this process through a real IPython shell, Runtime and Snapshots (as the kernel runs
them); ``trust``, ``export`` and ``import`` are the real CLI. The side effect of each step
is a line in a file: a step that runs again writes it again.

Each attack has its control: once Bob runs ``durable-nb trust`` on the changed journal,
the copied record is used (the epoch makes every step run again; the copied result
replays). Before journal ids (a0653f7) both attacks worked without ``trust``.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import duckdb
import pytest
from attack import cli, show
from IPython.core.interactiveshell import InteractiveShell

from durable_nb import runtime, trust
from durable_nb.runtime import Runtime
from durable_nb.snapshot import Snapshots


class Bob:
    """Bob's HOME: his notebooks' journals in one folder, his side effects in a file."""

    def __init__(self, home: Path) -> None:
        self.home, self.journals, self.effects = home, home / "journals", home / "effects"
        self.shell = InteractiveShell.instance()
        self.setup = (
            "import durable_nb as dnb\n@dnb.step\ndef pay(n):\n"
            f"    open({str(self.effects)!r}, 'a').write(f'PAID {{n}}\\n')\n"
            "    return {n * 10}\n"  # a set: a pickled result
        )

    def paid(self) -> list[str]:
        return self.effects.read_text().splitlines() if self.effects.exists() else []

    def journal(self, nb: str) -> Path:
        return self.journals / f"{Path(nb).stem}.duckdb"

    def session(self, nb: str, *sources: str, fresh: int = 0, folder: Path | None = None):
        """Run ``sources`` (after the setup cell) as Bob's kernel of ``nb`` would: the
        side effects paid, the errors the cells raised."""
        before = len(self.paid())
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DURABLE_NB_DIR", str(folder or self.journals))
            rt = Runtime(str(self.home / nb))
            runtime.install(rt)
            snaps, errors = Snapshots(self.shell, rt), []
            try:
                for _ in range(fresh):
                    rt.fresh()
                for source in (self.setup, *sources):
                    rt.begin_cell(None, source)
                    result = self.shell.run_cell(source, store_history=False, silent=True)
                    snaps.after_cell(source, result.success)
                    rt.end_cell("ok" if result.success else "error", None)
                    if not result.success:
                        errors.append(str(result.error_in_exec))
            finally:
                runtime.install(None)
                rt.close()
        return self.paid()[before:], errors

    def sql(self, nb: str, sql: str, params: list | None = None) -> list[tuple]:
        con = duckdb.connect(str(self.journal(nb)))
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    def trust(self, nb: str) -> None:
        proc = cli("trust", self.journal(nb), home=self.home)
        assert proc.returncode == 0 and "trusted" in proc.stdout, show(proc)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Bob's notebook A (three paid steps) and notebook B (after two %durable fresh), his
    secret set for the module; their journals, kept to copy from."""
    home = tmp_path_factory.mktemp("bob")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_DATA_DIR", str(home / "jupyter-data"))
        mp.setattr(trust, "_secret", None)
        bob = Bob(home)
        assert bob.session("A.ipynb", *CELLS) == (["PAID 1", "PAID 2", "PAID 3"], [])
        assert bob.session("B.ipynb", fresh=2) == ([], [])
        yield bob


CELLS = ("a = pay(1)\n", "b = pay(2)\n", "c = pay(3)\n")


@pytest.fixture
def bob(made, tmp_path):
    """Bob with fresh copies of A's and B's journals (the module's stay as made)."""
    bob = Bob(made.home)
    bob.journals = tmp_path / "journals"
    shutil.copytree(made.journals, bob.journals)
    return bob


def test_control_bobs_own_journal_replays_every_step(bob):
    assert bob.session("A.ipynb", *CELLS) == ([], [])


def test_an_epoch_row_copied_from_another_notebook_re_runs_nothing(bob):
    """F2: B's epoch row, signed by Bob, copied into A: A's steps ran again (PAID twice)."""
    [row] = bob.sql("B.ipynb", "SELECT * FROM meta WHERE key = 'epoch'")
    bob.sql("A.ipynb", "INSERT OR REPLACE INTO meta VALUES (?, ?, ?)", list(row))
    paid, errors = bob.session("A.ipynb", *CELLS)
    assert paid == [] and len(errors) == 3, (paid, errors)
    assert all("epoch" in e and "not signed by you" in e for e in errors), errors
    bob.trust("A.ipynb")  # control: accepted, epoch 2 holds no result: every step runs
    assert bob.session("A.ipynb", *CELLS) == (["PAID 1", "PAID 2", "PAID 3"], [])


def test_a_result_copied_from_another_notebook_does_not_replay(bob):
    """F3: A's signed result of pay(2) copied into B replayed there as B's own."""
    bob.sql("B.ipynb", "UPDATE meta SET value = '0' WHERE key = 'epoch'")  # as A's
    bob.trust("B.ipynb")
    bob.sql("B.ipynb", f"ATTACH '{bob.journal('A.ipynb')}' AS a (READ_ONLY); "
                       "INSERT INTO steps SELECT * FROM a.steps WHERE args = '(2)'")  # fmt: skip
    paid, errors = bob.session("B.ipynb", CELLS[1])  # the same cell as A's: its batch
    assert paid == [] and len(errors) == 1 and "not signed by you" in errors[0], errors
    bob.trust("B.ipynb")  # control: accepted as it is, A's result replays in B
    assert bob.session("B.ipynb", CELLS[1], "assert b == {20}\n") == ([], [])


def test_an_export_of_your_own_journal_still_replays_once_imported(bob):
    """``import`` gives the copy an id of its own and signs again for it what was yours,
    only from an export sealed by you: one whose seal is gone (changed, or crafted from
    records of your journals) gives a journal where nothing is yours."""
    nb = bob.home / "A.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    archive = bob.journals.parent / "A.dnb"
    env = {"DURABLE_NB_DIR": str(bob.journals)}
    assert cli("export", nb, "-o", archive, home=bob.home, **env).returncode == 0
    inbox = bob.journals.parent / "inbox"
    got = cli("import", archive, "--dir", inbox, home=bob.home)
    assert got.returncode == 0 and "signed by you" in got.stdout, show(got)
    copy = inbox / ".durable" / "A.duckdb"
    ids = [bob.sql("A.ipynb", "SELECT value FROM meta WHERE key = 'journal'")]
    con = duckdb.connect(str(copy), read_only=True)
    try:
        ids.append(con.execute("SELECT value FROM meta WHERE key = 'journal'").fetchall())
    finally:
        con.close()
    assert ids[0] != ids[1]
    assert bob.session("A.ipynb", *CELLS, folder=copy.parent) == ([], [])
    with zipfile.ZipFile(archive, "a") as z:
        z.comment = b"{}"  # the seal gone: not an export of Bob's
    got = cli("import", archive, "--dir", inbox / "again", home=bob.home)
    assert got.returncode == 0 and "not trusted here" in got.stdout, show(got)
    paid, errors = bob.session("A.ipynb", *CELLS, folder=inbox / "again" / ".durable")
    assert paid == [] and len(errors) == 3, errors  # its cells name A's id: not this one's
    assert "not signed by you" in errors[0] or "another of your journals" in errors[0]


def test_an_answer_copied_from_another_notebook_is_asked_again(bob, monkeypatch):
    """A journaled ``dnb.confirm`` answer is consent to act: B's "yes" (signed by Bob)
    copied into A was taken as A's. Now it is asked again (here nobody can answer)."""
    drain = "ok = dnb.confirm('Drain 3 nodes?')\nassert ok\n"
    with monkeypatch.context() as mp:
        mp.setenv("DURABLE_NB_ANSWERS", '["Drain 3 nodes?=yes"]')
        assert bob.session("B.ipynb", drain) == ([], [])
    assert bob.session("B.ipynb", drain) == ([], [])  # control: in B, it replays
    bob.sql("A.ipynb", "INSERT OR REPLACE INTO meta VALUES ('epoch', '2', NULL)")  # as B's
    bob.trust("A.ipynb")
    copy = "INSERT INTO steps SELECT * FROM b.steps WHERE name = 'dnb.confirm'"
    bob.sql("A.ipynb", f"ATTACH '{bob.journal('B.ipynb')}' AS b (READ_ONLY); {copy}")
    _, errors = bob.session("A.ipynb", drain)
    assert len(errors) == 1 and "nobody can answer" in errors[0], errors
