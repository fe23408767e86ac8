"""A journal's group commit (``Journal.sync``) waits for the disk outside the journal's lock.

The kernel's thread writes a cell's end record as the cell's reply goes out; the ticking
thread syncs, each second, what trivial cells wrote unsynced, and writes a running cell's
outputs. On a slow disk (a network file system's fdatasync takes tens of milliseconds) the
reply must not wait for that sync, and the sync must not call synced what was written while
it waited. Here the disk is made to wait until the test lets it go.
"""

from __future__ import annotations

import os
import threading

import pytest
from test_store import cell, variable  # (on the path)

from durable_nb.store import Journal

pytestmark = pytest.mark.unit

#: Long enough for any machine to write a row; a lock held across the sync never lets go.
PATIENCE = 20


@pytest.fixture
def slow_disk(monkeypatch):
    """``os.fdatasync`` held until the test sets ``release``; ``entered`` once it is called."""
    entered, release = threading.Event(), threading.Event()
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        entered.set()
        assert release.wait(PATIENCE * 2), "the test never let the disk go"
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    yield entered, release
    release.set()


def _in_thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def test_a_row_written_while_the_journal_syncs_does_not_wait_for_the_disk(tmp_path, slow_disk):
    entered, release = slow_disk
    j = Journal.open(tmp_path / "nb.duckdb")
    try:
        j.write_all([(variable(1, "a"), None), (cell(1), None)], sync=False)
        assert j.unsynced
        syncing = _in_thread(j.sync)
        assert entered.wait(PATIENCE), "the sync never reached the disk"
        writer = _in_thread(j.write_all, [(cell(2), None)], False)  # a cell's end, at its reply
        writer.join(PATIENCE)
        waited = writer.is_alive()
        release.set()
        syncing.join(PATIENCE)
        writer.join(PATIENCE)
        assert not waited, "the cell's end record waited for another thread's fdatasync"
        assert not syncing.is_alive() and not writer.is_alive()
        assert j.unsynced, "cell 2 was written after the sync began: it is not known synced"
        j.sync()
        assert not j.unsynced
        assert {c.seq for c in j.cells()} == {1, 2}
    finally:
        release.set()
        j.abandon()


def test_a_sync_still_waiting_when_the_journal_closes_ends_quietly(tmp_path, slow_disk):
    # The log's descriptor is closed by the close; the sync holds a duplicate of it.
    entered, release = slow_disk
    j = Journal.open(tmp_path / "nb.duckdb")
    j.write_all([(cell(1), None)], sync=False)
    failed: list[BaseException] = []

    def sync() -> None:
        try:
            j.sync()
        except BaseException as exc:  # (the thread's error, for the test to see)
            failed.append(exc)

    syncing = _in_thread(sync)
    assert entered.wait(PATIENCE)
    j.stop_writing()  # the log closed (the disk refused a write elsewhere)
    release.set()
    syncing.join(PATIENCE)
    assert not syncing.is_alive() and failed == []
    j.abandon()


def test_a_sync_with_nothing_written_meanwhile_leaves_the_journal_synced(tmp_path):
    j = Journal.open(tmp_path / "nb.duckdb")
    try:
        j.write_all([(cell(1), None)], sync=False)
        assert j.unsynced
        j.sync()
        assert not j.unsynced
        j.write_all([(cell(2), None)], sync=True)
        assert not j.unsynced
    finally:
        j.abandon()
