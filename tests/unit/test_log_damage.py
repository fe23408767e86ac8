"""The log reader keeps every intact record around damage, and counts what it lost.

Issue 12, finding 2: the reader used to stop at the first damaged record and the fold
then emptied the log, so every record after a flipped bit was lost, silently. Then a cut
across two records, the second the last, read as a torn tail: two records lost, unsaid.
"""

from __future__ import annotations

import pickle
import random
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_nb.store import log as logmod

pytestmark = pytest.mark.unit

RECORDS = [("step", (f"id{i}", i, "x" * (i % 7), 1.5 * i)) for i in range(6)]
TAIL = 12  # a record's trailer: its index, the index's crc32, END


def _encoded(records: list[tuple] = RECORDS) -> tuple[bytes, list[tuple[int, int]]]:
    """The log of ``records`` as Log.append writes it, and each record's byte span."""
    parts = [logmod.encode(r, i) for i, r in enumerate(records)]
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
    for offset in range(len(data)):
        k = next(i for i, (s, e) in enumerate(spans) if s <= offset < e)
        in_trailer = offset >= spans[k][1] - TAIL  # the record's payload is intact
        for bit in range(8):
            damaged = bytearray(data)
            damaged[offset] ^= 1 << bit
            got, count = logmod.scan(bytes(damaged))
            if in_trailer:
                assert (got, count) == (RECORDS, 0), (offset, bit)
            else:
                assert (got, count) == (RECORDS[:k] + RECORDS[k + 1 :], 1), (offset, bit)


@pytest.mark.parametrize("k", range(len(RECORDS) - 1))
def test_a_cut_across_two_records_costs_them_and_says_two(k):
    data, spans = _encoded()
    (s1, e1), (s2, e2) = spans[k], spans[k + 1]
    for a in range(s1 + 16, e1 - TAIL, 7):  # from inside record k's payload ...
        for b in range(s2 + 1, e2 - TAIL, 5):  # ... to inside record k+1's (the last too)
            got, count = logmod.scan(data[:a] + data[b:])
            assert (got, count) == (RECORDS[:k] + RECORDS[k + 2 :], 2), (a, b)


def test_a_torn_tail_is_ignored_quietly():
    data, spans = _encoded()
    size = spans[-1][1] - spans[-1][0]
    for cut in range(1, size):
        # A trailer cut short keeps its record: the payload and its crc are whole.
        whole = RECORDS if cut <= TAIL else RECORDS[:-1]
        assert logmod.scan(data[:-cut]) == (whole, 0), cut
    assert logmod.scan(data + random.Random(6).randbytes(777)) == (RECORDS, 0)
    assert logmod.scan(b"") == ([], 0)


def test_a_log_of_the_old_format_is_read():
    old = b""
    for r in RECORDS:
        payload = pickle.dumps(r, protocol=5)
        old += struct.pack("<II", len(payload), zlib.crc32(payload)) + payload
    assert logmod.scan(old) == (RECORDS, 0)
    assert logmod.scan(old[:-3]) == (RECORDS[:-1], 0)


# -- any damage: a property ------------------------------------------------------------------

#: Row values, with the markers a reader looks for inside them.
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.text(max_size=30), st.binary(max_size=40),
    st.sampled_from([logmod.MAGIC, logmod.MAGIC * 3, logmod.END, b"\5" + bytes(7) + logmod.END]),
)  # fmt: skip


@st.composite
def damaged_logs(draw):
    """A log, what damage did to it, and which records the damage touched."""
    n = draw(st.integers(1, 8))
    records = [("step", (f"id{i}", *draw(st.lists(SCALARS, max_size=5)))) for i in range(n)]
    return records, *_damage(draw, *_encoded(records))


def _damage(draw, data: bytes, spans: list[tuple[int, int]]) -> tuple[bytes, set[int], bool]:
    """``data`` damaged: the bytes, which records (by span) it touched, whether it may
    look like a torn append."""
    kind = draw(st.sampled_from(["flip", "cut", "insert"]))
    if kind == "flip":
        a = draw(st.integers(0, len(data) - 1))
        damaged = bytearray(data)
        damaged[a] ^= draw(st.integers(1, 255))
        touched = {i for i, (s, e) in enumerate(spans) if s <= a < e}
        reach = a + 1
    elif kind == "cut":  # bytes removed from the middle, across any records
        a = draw(st.integers(0, len(data) - 2))
        reach = draw(st.integers(a + 1, len(data) - 1))
        damaged = data[:a] + data[reach:]
        touched = {i for i, (s, e) in enumerate(spans) if s < reach and a < e}
    else:
        a = reach = draw(st.integers(1, len(data) - 1))
        damaged = data[:a] + draw(st.binary(min_size=1, max_size=30)) + data[a:]
        touched = {i for i, (s, e) in enumerate(spans) if s < a < e}
    # Damage that reaches the last record's trailer may look like a torn append.
    at_end = reach > len(data) - TAIL
    return bytes(damaged), touched, at_end


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_logs())
def test_damage_costs_only_the_records_it_touched_and_says_how_many(case):
    records, damaged, touched, at_end = case
    got, count = logmod.scan(damaged)
    kept = [records.index(r) for r in got]  # nothing damaged is returned
    assert kept == sorted(set(kept))
    assert set(range(len(records))) - touched <= set(kept)  # every untouched record kept
    lost = len(records) - len(kept)
    if not at_end:
        assert count == lost  # said, and exactly
    else:  # the last END may be gone: then no byte tells damage from a torn append
        assert count <= max(lost, 1)


@st.composite
def grouped_logs(draw):
    """A log of single rows and groups (a cell's variables with its end record)."""
    records = []
    for i in range(draw(st.integers(1, 6))):
        rows = [("variable", (f"v{i}.{j}", *draw(st.lists(SCALARS, max_size=3))))
                for j in range(draw(st.integers(1, 4)))]  # fmt: skip
        records.append(rows[0] if len(rows) == 1 else (logmod.GROUP, tuple(rows)))
    return records, *_damage(draw, *_encoded(records))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(grouped_logs())
def test_a_group_is_read_whole_or_not_at_all(case):
    records, damaged, touched, at_end = case
    got, count = logmod.scan(damaged)
    rows = [r[1] if r[0] == logmod.GROUP else (r,) for r in records]
    kept = [i for i, group in enumerate(rows) if group[0] in got]
    assert got == [row for i in kept for row in rows[i]]  # whole groups, in order
    assert set(range(len(records))) - touched <= set(kept)
    lost = len(records) - len(kept)
    assert count == lost if not at_end else count <= max(lost, 1)


def test_a_group_in_a_group_or_of_anything_but_rows_is_damage():
    row = ("variable", ("v", 1))
    for record in [
        (logmod.GROUP, ((logmod.GROUP, (row,)),)),
        (logmod.GROUP, ()),
        (logmod.GROUP, (row, ("variable", ("v", [1])))),
        (logmod.GROUP, [row]),
        (logmod.GROUP, ("variable", "v")),
    ]:
        assert logmod.scan(logmod.encode(record)) == ([], 1), record
    assert logmod.scan(logmod.encode((logmod.GROUP, (row, row)))) == ([row, row], 0)


@pytest.mark.parametrize("zeros", [4, 12, 16, 100, 4096])
def test_a_zeroed_head_costs_the_records_it_covers_and_is_counted(zeros):
    """Review F8: zeros read as a record of the pre-MAGIC format (length 0, crc32 0), and
    the whole log was taken for an empty old one: nothing returned, nothing counted."""
    records = [("step", (f"id{i}", i, "x" * 200)) for i in range(40)]
    data, spans = _encoded(records)
    got, count = logmod.scan(b"\0" * zeros + data[zeros:])
    covered = sum(1 for s, _ in spans if s < zeros)
    assert got == records[covered:] and count == covered
