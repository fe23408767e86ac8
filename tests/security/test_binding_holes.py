"""Second review of the journal binding (issue 11, findings B1..B9): checks that read only
the rows signed by you must not be blinded by making some of your rows unsigned (one byte
changed, the id row deleted) or by pushing them out of a window with unsigned rows.

Bob's notebooks run in this process as in test_journal_id (its fixtures); each attack has a
control showing the change is otherwise live.
"""

from __future__ import annotations

import pytest
import test_journal_id as base

CELLS, made, bob = base.CELLS, base.made, base.bob  # its fixtures


def _result_seq(bob, nb: str, n: int) -> int:
    [(seq,)] = bob.sql(nb, "SELECT seq FROM steps WHERE args = ?", [f"({n})"])
    return seq


@pytest.mark.parametrize("change", ["source = source || ' '", "manifest = NULL"])
def test_b8_a_cell_row_made_unsigned_and_its_results_deleted_is_refused(bob, change):
    """B8: one byte of the cell row that wrote pay(2) changed (now unsigned) and pay(2)'s
    result deleted: lookup counted the unsigned row as present, and pay(2) ran again."""
    seq = _result_seq(bob, "A.ipynb", 2)
    bob.sql("A.ipynb", "DELETE FROM steps WHERE seq = ?", [seq])
    bob.sql("A.ipynb", f"UPDATE cells SET {change} WHERE seq = ?", [seq])
    paid, errors = bob.session("A.ipynb", *CELLS)
    assert "PAID 2" not in paid and errors, (paid, errors)
    assert any("deleted or withheld" in e for e in errors), errors
