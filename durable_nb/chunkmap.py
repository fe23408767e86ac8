"""Chunk files mapped straight into a restored buffer's pages, where that is safe (Linux).

Most of a big restore went to the OS making fresh memory (here ~0.13 s per 200 MB, on
one core whatever the threads) and to copying chunk files into it. A chunk mapped
privately at its place in the buffer uses the page cache's own pages: nothing is
zeroed or copied, and a write to the buffer copies just the page written (the file
never changes).

A mapped page stays the file's until it is written, so a file cut short beneath it
would kill the process (SIGBUS) at the next read, and one rewritten in place (``cp -r``
of a backup over ``.durable`` truncates and rewrites) would change the value, even
under pages the user wrote (they are dropped). Only files this process cannot change
in place are mapped: a regular file of the chunk's size, owned by this user, with one
link and no write permission for anyone (durable_nb writes its chunk files so, and
never in place), on a local file system (asked of the open file itself: a chunk may be
a symlink to another file system). A process that writes files whatever their mode
(root, or CAP_DAC_OVERRIDE / CAP_FOWNER: Docker, Colab) maps nothing: there a file's
mode protects nothing, and every chunk is read into the buffer as before.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import os
import platform
import stat
import sys
from typing import Any

#: File systems whose pages cannot vanish under a mapping (network and FUSE ones may):
#: ext2/3/4, xfs, btrfs, tmpfs, overlayfs, zfs, f2fs.
LOCAL = {0xEF53, 0x58465342, 0x9123683E, 0x01021994, 0x794C7630, 0x2FC12FC1, 0xF2F52010}
_MAP_FIXED = 0x10  # Linux on x86_64 and aarch64
_RW = mmap.PROT_READ | mmap.PROT_WRITE


@functools.cache
def _libc() -> Any:
    """libc with ``mmap`` and ``statfs`` typed, or None where chunks are not mapped."""
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "aarch64"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]  # fmt: skip
        libc.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return libc


def fs_type(fd: int) -> int | None:
    """The file system type (``f_type``, leading ``struct statfs`` on 64-bit Linux) of the
    open file ``fd``; None when it cannot be known."""
    raw = ctypes.create_string_buffer(256)
    if _libc().fstatfs(fd, raw) != 0:
        return None
    return ctypes.c_long.from_buffer(raw).value & 0xFFFFFFFF


#: Capabilities that let a process write or chmod a file whatever its mode and owner.
_CAP_DAC_OVERRIDE, _CAP_FOWNER = 1, 3


def privileged() -> bool:
    """Whether this process can write files whatever their mode: root, or effective
    CAP_DAC_OVERRIDE or CAP_FOWNER (``CapEff`` of /proc/self/status; unknown counts as
    yes)."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status", "rb") as f:
            line = next(x for x in f if x.startswith(b"CapEff:"))
        caps = int(line.split()[1], 16)
    except (OSError, StopIteration, IndexError, ValueError):
        return True
    return bool(caps & (1 << _CAP_DAC_OVERRIDE | 1 << _CAP_FOWNER))


@functools.cache
def _max_maps() -> int:
    try:
        with open("/proc/sys/vm/max_map_count", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


def _room(chunks: int) -> bool:
    """Whether ``chunks`` more mappings leave this process most of its mapping limit
    (each mapped chunk is one; a process over the limit cannot allocate memory)."""
    try:
        with open("/proc/self/maps", "rb") as f:
            used = f.read().count(b"\n")
    except OSError:
        return False
    return used + chunks + 16 <= _max_maps() // 2


def region(nbytes: int, chunks: int) -> Region | None:
    """A fresh buffer of ``nbytes`` for ``chunks`` chunk files to be mapped into; None
    where they are not (not Linux, a process that can write any file, near the limit of
    mappings, or the memory refused)."""
    if _libc() is None or privileged() or not _room(chunks):
        return None
    try:
        buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (OSError, ValueError):
        return None
    anchor = ctypes.c_char.from_buffer(buf)  # only to learn the address
    base = ctypes.addressof(anchor)
    del anchor
    return Region(memoryview(buf), base)


class Region:
    """A fresh private buffer into whose pages whole chunk files can be mapped.

    ``view`` owns the mapping and every chunk mapped into it: all are unmapped when the
    last array over it goes.
    """

    def __init__(self, view: memoryview, base: int) -> None:
        self.view = view
        self.base = base

    def map(self, fd: int, offset: int, size: int) -> bool:
        """Map the file ``fd`` (``size`` bytes) at ``offset`` of the buffer when it is safe
        (see the module); False: read it into the buffer instead."""
        if offset % mmap.PAGESIZE or size % mmap.PAGESIZE or not size:
            return False
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) and st.st_size == size and st.st_nlink == 1
                and st.st_uid == os.geteuid() and not st.st_mode & 0o222
                and fs_type(fd) in LOCAL):  # fmt: skip
            return False
        libc, addr = _libc(), self.base + offset
        flags = mmap.MAP_PRIVATE | _MAP_FIXED
        if libc.mmap(addr, size, _RW, flags, fd, 0) == addr:
            return True
        # Refused (out of memory or mappings): the pages there may be gone. Fresh ones
        # go back before anything is read into them, or the buffer is not handed out.
        if libc.mmap(addr, size, _RW, flags | mmap.MAP_ANONYMOUS, -1, 0) != addr:
            errno = ctypes.get_errno()
            raise OSError(errno, f"a restore's buffer lost its memory: {os.strerror(errno)}")
        return False
