"""A journal's group commit (``Journal.sync``) waits for the disk outside the journal's lock.

The kernel's thread writes a cell's end record as the cell's reply goes out; the ticking
thread syncs, each second, what trivial cells wrote unsynced, and writes a running cell's
outputs. On a slow disk (a network file system's fdatasync takes tens of milliseconds) the
reply must not wait for that sync, and the sync must not call synced what was written while
it waited. Here the disk is made to wait until the test lets it go.
"""

from __future__ import annotations

import fcntl
import os
import resource
import threading

import pytest
from test_store import cell, variable  # (on the path)

from durable_nb.store import Journal
from durable_nb.store import log as log_module

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


@pytest.mark.parametrize("apart", [True, False], ids=["second-description", "no-proc"])
@pytest.mark.parametrize("close", ["close", "stop_writing", "abandon"])
def test_a_sync_still_waiting_when_the_journal_closes_ends_quietly(
    tmp_path, slow_disk, close, apart, monkeypatch
):
    # The close waits for the sync's descriptor, then closes it: never one of another file.
    # Without /proc the sync holds the lock, as it always did; a tick after the close finds
    # no log either way (it found the closed one's descriptor: EBADF, said as damage).
    if not apart:
        monkeypatch.setattr(log_module, "_second_description", lambda fd: None)
    entered, release = slow_disk
    j = Journal.open(tmp_path / "nb.duckdb")
    assert j._log.apart == apart
    j.write_all([(cell(1), None)], sync=False)
    failed: list[BaseException] = []

    def sync() -> None:
        try:
            j.sync()
        except BaseException as exc:  # (the thread's error, for the test to see)
            failed.append(exc)

    syncing = _in_thread(sync)
    assert entered.wait(PATIENCE)
    closing = _in_thread(getattr(j, close))
    release.set()
    syncing.join(PATIENCE)
    closing.join(PATIENCE)
    assert not syncing.is_alive() and not closing.is_alive() and failed == []
    j.sync()  # a tick that comes after the close: nothing to sync, nothing said
    j.abandon()


def test_the_sync_beside_the_writer_goes_through_a_description_of_its_own(tmp_path, monkeypatch):
    # Linux reports a failed write-back once per open file description: a sync through the
    # writer's (or a duplicate of it) could take the report a step's own fdatasync needs to
    # refuse its write (helper-75 H1, reproduced on a full ext2 loop device).
    j = Journal.open(tmp_path / "nb.duckdb")
    try:
        j.write_all([(cell(1), None)], sync=False)
        used: list[int] = []
        real = os.fdatasync
        monkeypatch.setattr(os, "fdatasync", lambda fd: (used.append(fd), real(fd))[1])
        j.sync()
        (fd,) = used
        writer = j._log.fd
        assert os.fstat(fd).st_ino == os.fstat(writer).st_ino  # the log file itself
        mode = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
        assert mode != fcntl.fcntl(writer, fcntl.F_GETFL) & os.O_ACCMODE  # not a duplicate
    finally:
        j.abandon()


def test_a_sync_needs_no_descriptor_more_when_the_process_has_none_left(tmp_path):
    # A cell holding every descriptor its limit allows, while the tick syncs (helper-75 M1).
    j = Journal.open(tmp_path / "nb.duckdb")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held: list[int] = []
    try:
        j.write_all([(cell(1), None)], sync=False)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(256, len(os.listdir("/proc/self/fd"))
                                                        + 16), hard))  # fmt: skip
        with pytest.raises(OSError):
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        j.sync()
        assert not j.unsynced
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
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
