"""The resume plan of ``durable-nb run``: which cells an earlier run left done (no kernel)."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from durable_nb.cli import plan
from durable_nb.cli.plan import Cell, Executed

pytestmark = pytest.mark.unit

SOURCES = ["x = 1", "y = x + 1", "print(y)"]
CELLS = [Cell(i, f"c{i}", s) for i, s in enumerate(SOURCES)]


def done(key: str, seq: int, source: str) -> plan.Done:
    return {"key": key, "seq": seq, "hash": plan.source_hash(source)}


def previous(*entries: plan.Done) -> dict:
    return {"started": 0.0, "done": list(entries), "parameters": []}


def test_no_earlier_run_runs_every_cell():
    assert plan.resume(None, [], CELLS) == []
    assert plan.resume({}, [Executed("c0", 1, "x = 1", "ok")], CELLS) == []


def test_cells_that_succeeded_are_the_prefix_to_skip():
    executed = [Executed("c0", 1, "x = 1", "ok"), Executed("c1", 2, "y = x + 1", "error")]
    assert plan.resume(previous(), executed, CELLS) == [done("c0", 1, "x = 1")]


def test_a_finished_run_starts_over():
    executed = [Executed(c.key, i + 1, c.source, "ok") for i, c in enumerate(CELLS)]
    assert plan.resume(previous(), executed, CELLS) == []


def test_an_edited_cell_ends_the_prefix():
    executed = [Executed("c0", 1, "x = 1", "ok"), Executed("c1", 2, "y = x + 2", "ok")]
    assert plan.resume(previous(), executed, CELLS) == [done("c0", 1, "x = 1")]


def test_cells_the_earlier_run_skipped_stay_done():
    # That run skipped c0 (done before it) and ran c1, then failed in c2.
    prev = previous(done("c0", 1, "x = 1"))
    executed = [Executed("c1", 5, "y = x + 1", "ok"), Executed("c2", 6, "print(y)", "error")]
    assert plan.resume(prev, executed, CELLS) == [
        done("c0", 1, "x = 1"),
        done("c1", 5, "y = x + 1"),
    ]


def test_a_failed_execution_undoes_an_earlier_success():
    prev = previous(done("c0", 1, "x = 1"))
    executed = [Executed("c0", 4, "x = 1", "error")]
    assert plan.resume(prev, executed, CELLS) == []


def test_a_success_whose_namespace_was_not_saved_is_not_done():
    prev = previous(done("c0", 1, "x = 1"))
    executed = [Executed("c0", 4, "x = 1", "ok", "the namespace was not saved: KeyboardInterrupt")]
    assert plan.resume(prev, executed, CELLS) == []
    assert plan.resume(prev, [Executed("c0", 4, "x = 1", "ok")], CELLS) != []


def test_executions_out_of_order_end_the_prefix():
    # The namespace is restored as of the last cell of the prefix: its seq must grow.
    executed = [Executed("c1", 1, "y = x + 1", "ok"), Executed("c0", 2, "x = 1", "ok")]
    assert plan.resume(previous(), executed, CELLS) == [done("c0", 2, "x = 1")]


def test_the_recorded_plan_round_trips():
    entries = [done("c0", 1, "x = 1")]
    raw = plan.record(entries, [["n", "3"]])
    parsed = plan.parse(raw)
    assert parsed["done"] == entries
    assert parsed["parameters"] == [["n", "3"]]
    assert isinstance(parsed["started"], float)
    assert json.loads(raw) == parsed
    assert plan.parse(None) is None
    assert plan.parse("null") is None


def test_code_cells_are_the_cells_a_run_executes():
    skipped = new_code_cell("secret()")
    skipped.metadata["tags"] = ["skip-execution"]
    nb = new_notebook(
        cells=[
            new_markdown_cell("# title"),
            new_code_cell("a = 1", id="first"),
            new_code_cell("   \n"),
            skipped,
            new_code_cell("b = 2", id="second"),
        ]
    )
    cells = plan.code_cells(nb)
    assert [(c.index, c.key, c.source) for c in cells] == [
        (1, "first", "a = 1"),
        (4, "second", "b = 2"),
    ]


def test_cells_without_ids_are_keyed_by_source():
    nb = new_notebook(cells=[new_code_cell("a = 1"), new_code_cell("b = 2")])
    for cell in nb.cells:
        del cell["id"]
    keys = [c.key for c in plan.code_cells(nb)]
    assert all(k.startswith("src:") for k in keys)
    assert len(set(keys)) == 2


def _old_notebook(*sources: str):
    """A notebook as nbformat 4.4 has it: cells without ids."""
    nb = new_notebook()
    nb.nbformat_minor = 4
    for s in sources:
        cell = new_code_cell(s)
        del cell["id"]
        nb.cells.append(cell)
    return nb


def test_cells_without_ids_get_distinct_ids_from_place_and_source():
    nb = _old_notebook("x = [0]", "x", "x[0] += 1", "x")
    assert plan.identify(nb) == 4
    ids = [c.id for c in nb.cells]
    assert len(set(ids)) == 4 and nb.nbformat_minor == 5
    nbformat.validate(nb)
    again = _old_notebook("x = [0]", "x", "x[0] += 1", "x")
    plan.identify(again)
    assert [c.id for c in again.cells] == ids  # the same file, the same ids, every run
    assert len({c.key for c in plan.code_cells(nb)}) == 4


def test_ids_a_notebook_has_are_kept_and_repeats_are_replaced():
    nb = new_notebook()  # given cells, it would repair the repeat itself
    nb.cells = [new_code_cell("x", id="a"), new_code_cell("x", id="a"),
                new_markdown_cell("x", id="code-3-0")]  # fmt: skip
    assert plan.identify(nb) == 1
    assert nb.cells[0].id == "a" and nb.cells[1].id not in ("a", "code-3-0")


def test_a_finished_run_of_equal_cells_starts_over():
    # The finding: cells x = [0] / x / x[0] += 1 / x without ids, run to the end.
    nb = _old_notebook("x = [0]", "x", "x[0] += 1", "x")
    plan.identify(nb)
    cells = plan.code_cells(nb)
    executed = [Executed(c.key, i + 1, c.source, "ok") for i, c in enumerate(cells)]
    assert plan.resume(previous(), executed, cells) == []


def test_equal_keys_are_refused():
    nb = _old_notebook("x", "x")
    with pytest.raises(ValueError):
        plan.code_cells(nb)
