"""Issue 11: what a journal from someone else may hold, refused without a kernel."""

from __future__ import annotations

import json
import pickle
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_nb.blobs import BlobStore, referenced
from durable_nb.cli import plan
from durable_nb.errors import BlobDamaged
from durable_nb.store import Journal, journal_files

pytestmark = pytest.mark.unit


def _nested(depth: int) -> object:
    """A few bytes of pickle that expand to 2**depth items when walked."""
    x: object = "x"
    for _ in range(depth):
        x = (x, x)
    return x


def test_a_log_record_of_nested_references_is_refused_not_walked(tmp_path):
    path = tmp_path / "j.duckdb"
    Journal.open(path).close()
    payload = pickle.dumps(("cell", (_nested(40), "a")), protocol=5)
    record = struct.pack("<II", len(payload), zlib.crc32(payload)) + payload
    path.with_suffix(".log").write_bytes(record)
    j = Journal.open(path)  # would not return if the record were walked
    try:
        assert j.cells() == []
    finally:
        j.close()


def test_journal_files_are_this_users_only(tmp_path):
    path = tmp_path / "f" / "j.duckdb"
    j = Journal.open(path)
    j.close()
    assert path.stat().st_mode & 0o077 == 0
    assert path.parent.stat().st_mode & 0o077 == 0
    for file in journal_files(path):
        if file.exists():
            assert file.stat().st_mode & 0o077 == 0, file


@pytest.mark.parametrize(
    "name", ["../../secret", "/etc/passwd", "a" * 31, "A" * 32, "0" * 32 + "/x", "", None, 7]
)
def test_a_blob_name_that_is_not_a_content_hash_is_never_opened(tmp_path, name):
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(BlobDamaged):
        store.get(name)
    with pytest.raises(BlobDamaged):
        store.get_chunks([name], 1)


@given(st.text(max_size=200))
def test_referenced_names_never_raise_and_are_hashes(text):
    for names in (referenced(text, text), referenced(text, None), referenced(None, text)):
        assert all(len(n) == 32 for n in names)


def test_referenced_names_keep_real_ones_and_drop_paths():
    good = "0123456789abcdef" * 2
    assert referenced(json.dumps([5, [good, "../x"]]), json.dumps([[1, ["/etc/passwd"]]])) == {good}
    assert referenced("[" * 100_000, "{" * 100_000) == set()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_a_plan_is_its_exact_shape_or_refused(value):
    try:
        parsed = plan.parse(json.dumps(value))
    except plan.BadPlan:
        return
    if parsed is not None:
        assert all(type(d["seq"]) is int for d in parsed["done"])


def test_a_plan_seq_is_an_integer_never_text_or_bool():
    for seq in ("1\nimport os", True, 1.5, None, [1], -1):
        raw = json.dumps(
            {"started": 0, "done": [{"key": "c", "seq": seq, "hash": "0" * 16}], "parameters": []}
        )
        with pytest.raises(plan.BadPlan):
            plan.parse(raw)


@pytest.mark.parametrize("key", ["schema_version", "epoch"])
@pytest.mark.parametrize("value", ["1; DROP TABLE steps", "1.5", "-1", "", "9" * 40])
def test_a_meta_number_that_is_not_one_is_a_clear_journal_error(tmp_path, key, value):
    import duckdb

    from durable_nb.errors import JournalCorrupt

    path = tmp_path / "j.duckdb"
    j = Journal.open(path)
    j.write_meta("epoch", "1")
    j.close()
    con = duckdb.connect(str(path))
    con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])
    con.close()
    with pytest.raises(JournalCorrupt, match=f"{key} = .*not a whole number"):
        Journal.open(path).close()
    with pytest.raises(JournalCorrupt):
        Journal.open(path).close()
