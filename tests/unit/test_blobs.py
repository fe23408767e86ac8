"""blobs: content-addressed files, written whole or not at all, chunked for big buffers."""

from __future__ import annotations

import mmap
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from durable_nb import blobs, chunkmap
from durable_nb.blobs import CHUNK, BlobStore, chunk_names
from durable_nb.errors import BlobDamaged


@pytest.fixture
def store(tmp_path) -> BlobStore:
    return BlobStore(tmp_path / "nb.blobs")


def files(store: BlobStore) -> list[str]:
    return sorted(p.name for p in store.folder.iterdir())


def test_put_names_a_blob_by_its_content_and_get_returns_it(store):
    name = store.put(b"hello")
    assert name == xxhash.xxh3_128_hexdigest(b"hello")
    assert store.get(name) == b"hello"
    assert files(store) == [name]  # no temporary file left behind


def test_identical_content_is_stored_once(store):
    first = store.put(b"same")
    mtime = (store.folder / first).stat().st_mtime_ns
    assert store.put(memoryview(b"same")) == first
    assert files(store) == [first] and (store.folder / first).stat().st_mtime_ns == mtime


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 9, 10 * CHUNK + 3])
def test_chunks_round_trip(store, size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    names = store.put_chunks(data)
    assert names == chunk_names(data)
    assert len(names) == -(-size // CHUNK)
    back = store.get_chunks(names, size)
    assert bytes(back) == data
    back[:1] = b"x" if size else b""  # the reassembled buffer is writable (restore needs it)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=64 * 70), st.integers(0, 64 * 70))
def test_chunk_names_are_each_chunks_own_hash_in_order_however_many(data, flip):
    """Hashed in threads from PARALLEL_CHUNKS chunks on: still each chunk's own name, in
    order, and a byte changed anywhere changes exactly its chunk's name."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(blobs, "CHUNK", 64)  # many chunks, cheaply: both paths are taken
        want = [xxhash.xxh3_128_hexdigest(data[i : i + 64]) for i in range(0, len(data), 64)]
        assert blobs.chunk_names(data) == want
        if data:
            changed = bytearray(data)
            changed[flip % len(data)] ^= 0x01
            got = blobs.chunk_names(changed)
            assert [a != b for a, b in zip(want, got, strict=True)].count(True) == 1
            assert want[flip % len(data) // 64] != got[flip % len(data) // 64]


def test_changing_a_slice_rewrites_only_its_chunk(store):
    data = bytearray(np.random.default_rng(0).integers(0, 256, 4 * CHUNK, np.uint8).tobytes())
    before = store.put_chunks(data)
    data[CHUNK + 10] ^= 0xFF
    after = chunk_names(data)
    assert [a != b for a, b in zip(before, after, strict=True)] == [False, True, False, False]
    store.put_chunks(data, after)
    assert len(files(store)) == 5


def test_equal_chunks_are_written_once_and_a_rewrite_writes_nothing(store):
    a, b, tail = b"a" * CHUNK, b"b" * CHUNK, b"c" * 10
    names = store.put_chunks(a + a + b + a + tail)
    assert names[0] == names[1] == names[3] and len(set(names)) == 3
    assert files(store) == sorted(set(names))  # no temporary file left
    mtimes = {n: (store.folder / n).stat().st_mtime_ns for n in files(store)}
    assert store.put_chunks(b + a) == [names[2], names[0]]
    assert {n: (store.folder / n).stat().st_mtime_ns for n in files(store)} == mtimes
    assert bytes(store.get_chunks(names, 4 * CHUNK + len(tail))) == a + a + b + a + tail


def test_names_hides_young_temporary_files_and_remove_frees_bytes(store):
    name = store.put(b"x" * 100)
    # (tempfile.mkstemp's names: eight of [a-z0-9_] after the prefix)
    young, old = store.folder / ".tmp-young_01", store.folder / ".tmp-old_0001"
    young.write_bytes(b"partial")
    old.write_bytes(b"partial")
    an_hour_ago = time.time() - 3700
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert store.names() == {name, ".tmp-old_0001"}
    assert store.remove(name) == 100
    assert store.names() == {".tmp-old_0001"}


def test_an_empty_store_has_no_names(tmp_path):
    store = BlobStore(tmp_path / "missing")
    assert store.names() == set()
    store.sync_dir()  # a folder not created yet is nothing to sync


def _damage(path, how: str) -> None:
    """Flip a byte of the file at ``path`` or cut its last; a new file of the same mode
    (blob files are read-only: a chunk of a big buffer would be mapped, not read)."""
    data, mode = bytearray(path.read_bytes()), path.stat().st_mode
    if how == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        del data[-1:]
    path.unlink()
    path.write_bytes(bytes(data))
    path.chmod(mode)


def mapped(folder) -> set[str]:
    """The files of ``folder`` this process has mapped now."""
    with open("/proc/self/maps") as f:
        return {line.split()[-1].rpartition("/")[2] for line in f if f" {folder}/" in line}


@settings(max_examples=25)
@given(
    st.integers(1, 20),  # pages of data (chunks are 2 pages here)
    st.integers(0, mmap.PAGESIZE - 1),  # bytes past them: a short last chunk, misaligned
    st.sets(st.integers(0, 9)),  # chunk files left writable: read, never mapped
    st.sets(st.integers(0, 9)),  # chunk files with a second link: read, never mapped
    st.none() | st.tuples(st.integers(0, 9), st.sampled_from(["flip", "truncate"])),
    st.booleans(),  # run as if unprivileged (CI's user), whatever this process is
)
def test_a_big_buffer_maps_only_safe_chunk_files_and_never_returns_a_damaged_one(
    tmp_path_factory, pages, tail, writable, linked, damaged, unprivileged
):
    """Mapped (read-only, one link, own, local, never as root: chunkmap.py) or read, a
    chunk reaches the buffer only if it matches its name; a write to the buffer never
    reaches a file."""
    page = mmap.PAGESIZE
    size, chunk = pages * page + tail, 2 * page
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    store = BlobStore(tmp_path_factory.mktemp("map") / "nb.blobs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(blobs, "CHUNK", chunk)
        mp.setattr(blobs, "MAPPED", 0)
        if unprivileged:
            mp.setattr(chunkmap, "privileged", lambda: False)
        names = store.put_chunks(data)
        paths = [store.folder / name for name in names]
        assert all(not p.stat().st_mode & 0o222 for p in paths)  # written read-only
        for i in writable & set(range(len(names))):
            paths[i].chmod(0o600)
        for i in linked & set(range(len(names))):
            os.link(paths[i], store.folder.parent / f"link-{i}")
        if damaged is not None and damaged[0] < len(names):
            _damage(paths[damaged[0]], damaged[1])
            with pytest.raises(BlobDamaged, match=names[damaged[0]]):
                store.get_chunks(names, size)
            return
        view = store.get_chunks(names, size)
        assert bytes(view) == data
        whole = {i for i in range(len(names)) if not min(chunk, size - i * chunk) % page}
        safe = whole - writable - linked  # whole pages only: a short tail page is read
        if os.geteuid() == 0 and not unprivileged:  # root writes any file: nothing mapped
            assert mapped(store.folder) == set()
        elif chunkmap.region(size, len(names)) is not None:  # Linux, no capabilities
            assert mapped(store.folder) == {names[i] for i in safe}
        view[:] = bytes(size)
        assert [xxhash.xxh3_128_hexdigest(p.read_bytes()) for p in paths] == names
        assert bytes(view) == bytes(size)
        del view
        assert mapped(store.folder) == set()


def test_a_chunk_is_mapped_only_from_a_local_file_system_asked_of_the_file_not_the_folder(
    tmp_path, monkeypatch
):
    """Replay links chunks through symlinks: the folder may be local, a chunk not."""
    shm = Path("/dev/shm")
    if chunkmap._libc() is None or not shm.is_dir():
        pytest.skip("chunks are mapped on Linux only")
    page = mmap.PAGESIZE
    monkeypatch.setattr(blobs, "CHUNK", 2 * page)
    monkeypatch.setattr(blobs, "MAPPED", 0)
    monkeypatch.setattr(chunkmap, "privileged", lambda: False)
    data = np.random.default_rng(2).integers(0, 256, 6 * page, dtype=np.uint8).tobytes()
    with tempfile.TemporaryDirectory(dir=shm) as elsewhere:
        names = BlobStore(elsewhere).put_chunks(data)
        store = BlobStore(tmp_path / "nb.blobs")
        store.folder.mkdir()
        for name in names:
            (store.folder / name).symlink_to(Path(elsewhere) / name)
        fs = {}
        for key, path in (("folder", store.folder), ("chunks", Path(elsewhere))):
            fd = os.open(path, os.O_RDONLY)
            fs[key] = chunkmap.fs_type(fd)
            os.close(fd)
        if fs["folder"] == fs["chunks"]:
            pytest.skip("/dev/shm is on the file system of the test's folder")
        for local, expected in ((fs["folder"], set()), (fs["chunks"], set(names))):
            monkeypatch.setattr(chunkmap, "LOCAL", {local})
            view = store.get_chunks(names, len(data))
            assert bytes(view) == data
            assert mapped(elsewhere) == expected
            del view


@pytest.mark.parametrize("how", ["flip", "truncate"])
@pytest.mark.parametrize("n", [3, 12])  # read one by one, and by a pool of threads
def test_a_damaged_chunk_or_blob_is_refused_on_read_never_returned(store, how, n):
    data = np.random.default_rng(1).integers(0, 256, n * CHUNK - 10, dtype=np.uint8).tobytes()
    names = store.put_chunks(data)
    _damage(store.folder / names[n - 2], how)
    with pytest.raises(BlobDamaged, match=names[n - 2]) as info:
        store.get_chunks(names, len(data))
    assert isinstance(info.value, OSError)  # a damaged file is treated like a missing one
    name = store.put(b"a step result" * 100)
    _damage(store.folder / name, how)
    with pytest.raises(BlobDamaged, match=name):
        store.get(name)


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_a_damaged_blob_is_moved_aside_so_storing_it_again_repairs_it(store, how):
    # Found by bench/faults.py (blob-flip): the step that ran again because its result
    # was damaged stored the same content, put kept the damaged file, and every later
    # replay ran the step again.
    data = b"a step result" * 100_000
    name = store.put(data)
    _damage(store.folder / name, how)
    with pytest.raises(BlobDamaged):
        store.get(name)
    assert store.put(data) == name
    assert store.get(name) == data
    chunks = np.random.default_rng(2).integers(0, 256, 3 * CHUNK, dtype=np.uint8).tobytes()
    names = store.put_chunks(chunks)
    _damage(store.folder / names[1], how)
    with pytest.raises(BlobDamaged):
        store.get_chunks(names, len(chunks))
    store.put_chunks(chunks)
    assert bytes(store.get_chunks(names, len(chunks))) == chunks


def test_a_big_buffer_asks_for_huge_pages_where_the_os_gives_them():
    # Filled by reads 2 MiB a fault: a 200 MB restore's buffer in ~0.1 s, not 0.2-0.3 s.
    import ctypes
    import re

    view = blobs.buffer(blobs.MAPPED)
    assert view.nbytes == blobs.MAPPED and not view.readonly
    view[:3] = b"abc"
    start = ctypes.addressof(ctypes.c_char.from_buffer(view.obj))
    with open("/proc/self/smaps") as f:
        smaps = f.read()
    for head, body in re.findall(r"^([0-9a-f]+-[0-9a-f]+) .*\n((?:[A-Z][^\n]*\n)+)", smaps, re.M):
        low, high = (int(x, 16) for x in head.split("-"))
        if low <= start < high:
            huge = blobs._huge_pages_on_request()
            eligible = re.search(r"THPeligible:\s+(\d)", body)
            assert eligible is not None and eligible.group(1) == ("1" if huge else "0")
            assert huge == ("[never]" not in Path(
                "/sys/kernel/mm/transparent_hugepage/enabled").read_text())  # fmt: skip
            return
    raise AssertionError("the buffer's mapping is not in /proc/self/smaps")
