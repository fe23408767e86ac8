"""The replay index loads results by batch on first need: it answers as a full index would.

Random writes (steps of cells, ``key=`` steps, final errors), lookups from the asking cell
or without one, folds, reopens and new epochs, against a model: the latest completed
result of each identity in the current epoch. ``KEEP`` is made tiny at times, so batches
are dropped and loaded again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_nb import trust
from durable_nb.store import Journal, StepRow, replay

pytestmark = pytest.mark.unit

CELLS, NAMES = ("c1", "c2"), ("f", "g")
# An identity fixes its cell and step (a fingerprint of them), or its key and step.
IDENTITIES = [f"{c}|{n}|{i}" for c in CELLS for n in NAMES for i in range(2)]
IDENTITIES += [f"key|{n}|k{i}" for n in NAMES for i in range(2)]

op = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(IDENTITIES), st.sampled_from(CELLS),
              st.booleans()),
    st.tuples(st.just("lookup"), st.sampled_from(IDENTITIES), st.sampled_from(CELLS),
              st.booleans()),
    st.tuples(st.just("fold"), st.none(), st.none(), st.none()),
    st.tuples(st.just("reopen"), st.none(), st.none(), st.none()),
    st.tuples(st.just("epoch"), st.none(), st.none(), st.none()),
)  # fmt: skip


@pytest.fixture(autouse=True)
def secret(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path_factory.mktemp("jupyter-data")))
    monkeypatch.setattr(trust, "_secret", None)


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, max_size=30), keep=st.sampled_from([1, 3, replay.KEEP]))
def test_lookups_answer_as_a_full_index(tmp_path_factory, monkeypatch, ops, keep):
    monkeypatch.setattr(replay, "KEEP", keep)
    path = Path(tmp_path_factory.mktemp("j")) / "nb.duckdb"
    j = Journal.open(path)
    model: dict[str, bytes] = {}  # identity -> latest completed result, this epoch
    clock = time.time()
    try:
        for n, (what, identity, cell, flag) in enumerate(ops):
            if what == "write":
                clock += 1
                kind, name, rest = identity.split("|")
                key = rest if kind == "key" else None
                cell_key = cell if key else kind  # a key= step may run in any cell
                ok = flag
                value = str(n).encode()
                j.write(StepRow(f"rec{n}", identity, j.epoch, name, cell_key, n, "r1", "()",
                                0, key, "ok" if ok else "error", "json" if ok else None,
                                value if ok else None, None, None if ok else "E", 1, "[]",
                                clock, clock), sync=False)  # fmt: skip
                if ok:
                    model[identity] = value
            elif what == "lookup":
                kind, name, _ = identity.split("|")
                asking = cell if kind == "key" else kind
                got = j.lookup(identity, asking, name) if flag else j.lookup(identity)
                want = model.get(identity)
                assert got == (None if want is None else ("json", want))
            elif what == "fold":
                j.fold()
            elif what == "reopen":
                j.close()
                j = Journal.open(path)
            else:
                j.new_epoch()
                model.clear()
        assert j.completed == len(model)
    finally:
        j.abandon()
        for f in path.parent.iterdir():
            if f.is_file():
                os.unlink(f)


def test_a_result_written_after_its_batch_was_loaded_is_found_after_a_fold(tmp_path):
    j = Journal.open(tmp_path / "nb.duckdb")
    try:
        assert j.lookup("c1|f|0", "c1", "f") is None  # loads c1's batch (empty)
        now = time.time()
        j.write(StepRow("rec", "c1|f|0", 0, "f", "c1", 1, "r1", "()", 0, None, "ok", "json",
                        b"7", None, None, 1, "[]", now, now))  # fmt: skip
        j.fold()
        assert j.lookup("c1|f|0", "c1", "f") == ("json", b"7")
    finally:
        j.abandon()
