"""A cell whose snapshot did not complete (interrupted, a failure inside durable_nb):
its end record says so, no restore stops there, and what it deleted stays deleted
once the next cell saves the namespace whole. No kernel: the store's real journal."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from durable_nb.errors import NamespaceNotSaved
from durable_nb.runtime import Runtime
from durable_nb.snapshot import _IPYTHON_NAMES, Snapshots

pytestmark = pytest.mark.unit

STOP = '''
class Stop:
    """Pickling it is interrupted, as a person's Ctrl-C during a long snapshot is."""
    def __reduce__(self):
        raise KeyboardInterrupt
'''


def _cell(rt: Runtime, snaps: Snapshots, shell, code: str) -> bool:
    """Run ``code`` as the extension does; whether its snapshot completed."""
    rt.begin_cell(None, code)
    assert shell.run_cell(code, store_history=False, silent=True).success
    try:
        snaps.after_cell(code, True)
        saved = True
    except KeyboardInterrupt:
        saved = False
    rt.end_cell("ok", None)
    return saved


@pytest.fixture
def shell():
    """The process's shell, with the names other tests left in it put aside meanwhile."""
    shell = InteractiveShell.instance()
    hidden = shell.user_ns_hidden
    mine = {n for n in shell.user_ns if n not in hidden and not _IPYTHON_NAMES.match(n)}
    aside = {n: shell.user_ns[n] for n in mine}  # (``_mutate`` of test_snapshot_props too)
    for name in aside:
        del shell.user_ns[name]
    yield shell
    for name in [n for n in shell.user_ns if n not in hidden and not _IPYTHON_NAMES.match(n)]:
        del shell.user_ns[name]
    shell.user_ns.update(aside)


def test_an_interrupted_snapshot_is_no_restore_point_and_deletions_are_kept(shell, tmp_path):
    ns_before = set(shell.user_ns)
    source = str(tmp_path / "nb.ipynb")
    rt = Runtime(source)
    snaps = Snapshots(shell, rt)
    try:
        assert _cell(rt, snaps, shell, STOP + "a = 1\nb = [1]")
        first = rt.cell.seq
        assert not _cell(rt, snaps, shell, "del a\nb.append(2)\ns = Stop()")
        second = rt.cell.seq
        journal = rt.journal
        assert journal.last_ok_seq() == first  # the default restore point
        with pytest.raises(NamespaceNotSaved, match=f"cell execution {second} ran"):
            snaps.restore(at=second)
        assert _cell(rt, snaps, shell, "b = [1, 2]\ndel s\nc = 3")  # saves it whole
        third = rt.cell.seq
        assert journal.last_ok_seq() == third
        with pytest.raises(NamespaceNotSaved):  # still not whole as of the second
            snaps.restore(at=second)
    finally:
        rt.close()
        for name in set(shell.user_ns) - ns_before:
            del shell.user_ns[name]
    rt = Runtime(source)
    try:
        report = Snapshots(shell, rt).restore()
        got = {n: shell.user_ns[n] for n in report.restored if n != "Stop"}
        assert report.seq == third and got == {"b": [1, 2], "c": 3}, report
        assert "a" not in shell.user_ns  # deleted in the unsaved cell, recorded after it
    finally:
        rt.close()
        for name in set(shell.user_ns) - ns_before:
            del shell.user_ns[name]


def test_a_restart_then_a_crash_restores_the_new_kernels_namespace_only(shell, tmp_path):
    """Names an earlier kernel saved that the new one never made are not brought back."""
    source = str(tmp_path / "nb.ipynb")
    ns_before = set(shell.user_ns)

    def kernel(code: str | None) -> tuple[Runtime, Snapshots]:
        for name in set(shell.user_ns) - ns_before:  # a fresh namespace, as after a restart
            del shell.user_ns[name]
        rt = Runtime(source)
        snaps = Snapshots(shell, rt)
        if code is not None:
            assert _cell(rt, snaps, shell, code)
        return rt, snaps

    rt, _ = kernel("old = [1]\nkept = 1")
    rt.close()
    rt, _ = kernel("kept = 2\nnew = 3")
    rt.close()
    rt, snaps = kernel(None)
    try:
        report = snaps.restore()
        assert sorted(report.restored) == ["kept", "new"], report
        assert (shell.user_ns["kept"], "old" in shell.user_ns) == (2, False)
    finally:
        rt.close()
