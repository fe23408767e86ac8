"""The log reader keeps every intact record around damage (issue 12, finding 2).

Before, the reader stopped at the first damaged record and the fold then emptied the
log: every record after a flipped bit was lost, silently.
"""

from __future__ import annotations

import pickle
import random
import struct
import zlib

import pytest

from durable_nb.store import log as logmod

pytestmark = pytest.mark.unit

RECORDS = [("step", (f"id{i}", i, "x" * (i % 7), 1.5 * i)) for i in range(6)]


def _encoded() -> tuple[bytes, list[tuple[int, int]]]:
    """The log of RECORDS, and each record's byte span."""
    parts = [logmod.encode(r) for r in RECORDS]
    spans, pos = [], 0
    for p in parts:
        spans.append((pos, pos + len(p)))
        pos += len(p)
    return b"".join(parts), spans


def test_intact_log_reads_back():
    data, _ = _encoded()
    assert logmod.scan(data) == (RECORDS, 0)


def test_a_flipped_bit_costs_only_its_record_and_is_counted():
    data, spans = _encoded()
    last = len(RECORDS) - 1
    for offset in range(len(data)):
        k = next(i for i, (s, e) in enumerate(spans) if s <= offset < e)
        for bit in range(8):
            damaged = bytearray(data)
            damaged[offset] ^= 1 << bit
            got, count = logmod.scan(bytes(damaged))
            if k == last and 4 <= offset - spans[k][0] < 8 and len(got) == last:
                continue  # a longer length in the last record reads as a torn tail
            assert got == RECORDS[:k] + RECORDS[k + 1 :], (offset, bit)
            assert count >= 1, (offset, bit)


def test_a_torn_tail_is_ignored_quietly():
    data, spans = _encoded()
    for cut in range(1, spans[-1][1] - spans[-1][0]):
        assert logmod.scan(data[:-cut]) == (RECORDS[:-1], 0)
    assert logmod.scan(data + random.Random(6).randbytes(777)) == (RECORDS, 0)
    assert logmod.scan(b"") == ([], 0)


def test_a_log_of_the_old_format_is_read():
    old = b""
    for r in RECORDS:
        payload = pickle.dumps(r, protocol=5)
        old += struct.pack("<II", len(payload), zlib.crc32(payload)) + payload
    assert logmod.scan(old) == (RECORDS, 0)
    assert logmod.scan(old[:-3]) == (RECORDS[:-1], 0)
