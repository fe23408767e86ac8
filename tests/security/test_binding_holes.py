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


def test_b7_the_id_row_deleted_is_restored_from_your_signed_cells(bob):
    """B7: the id row deleted (a new id: nothing of Bob's verified, deletion detection off)
    and pay(2)'s JSON-like result deleted: pay(2) ran again. Now the id comes back from
    the newest cell record signed by Bob, and the deletion is seen."""
    bob.sql("A.ipynb", "DELETE FROM steps WHERE seq = ?", [_result_seq(bob, "A.ipynb", 2)])
    bob.sql("A.ipynb", "DELETE FROM meta WHERE key = 'journal'")
    paid, errors = bob.session("A.ipynb", *CELLS)
    assert "PAID 2" not in paid and any("deleted or withheld" in e for e in errors), errors


def test_b7_another_journals_id_row_in_place_replays_nothing(bob):
    """B7: B's id row (signed by Bob) in A's place: A's records were all "not yours" and
    unannounced. Now nothing replays and no step runs until trust gives a new id."""
    [row] = bob.sql("B.ipynb", "SELECT * FROM meta WHERE key = 'journal'")
    bob.sql("A.ipynb", "INSERT OR REPLACE INTO meta VALUES (?, ?, ?)", list(row))
    paid, errors = bob.session("A.ipynb", *CELLS)
    assert paid == [] and len(errors) == 3, (paid, errors)
    assert all("id row of another of your journals" in e for e in errors), errors
    bob.trust("A.ipynb")  # control: accepted with a new id, its results replay
    assert bob.session("A.ipynb", *CELLS) == ([], [])


def test_b4_an_epoch_row_deleted_behind_unsigned_padding_is_seen(bob):
    """B4: B's epoch row deleted (epoch 2 -> 0) and 8 unsigned cell rows of a higher seq
    (then 64 unsigned steps of a later epoch) put first: the set-back check read only
    the newest 8 cells / 64 steps and let epoch 0 stand."""
    bob.sql("B.ipynb", "DELETE FROM meta WHERE key = 'epoch'")
    pad_cells = (
        "INSERT INTO cells SELECT cells.* REPLACE (exec_id || i AS exec_id, seq + i AS seq) "
        "FROM cells, range(1, 9) t(i) WHERE seq = (SELECT max(seq) FROM cells)"
    )
    pad_steps = (
        "INSERT INTO steps (record_id, identity, epoch, status, name, cell_key, seq) "
        "SELECT 'pad' || i, 'i' || i, 5, 'ok', 'pad', 'k', 1 FROM range(64) t(i)"
    )
    bob.sql("B.ipynb", f"{pad_cells}; {pad_steps}")
    paid, errors = bob.session("B.ipynb", *CELLS)
    assert paid == [] and len(errors) == 3, (paid, errors)
    assert all("older than records you signed" in e for e in errors), errors


def test_b9_trust_of_a_journal_whose_cells_have_no_seq_ends_well(bob):
    """B9: ``cells.seq`` NULL made ``durable-nb trust`` end in a traceback (TypeError in
    manifest.rebuild); such cells are left as they are."""
    bob.sql("A.ipynb", "UPDATE cells SET seq = NULL")
    bob.trust("A.ipynb")


def test_b1_a_yes_moved_to_another_question_of_the_journal_is_asked_again(bob, monkeypatch):
    """B1: Bob's signed "yes" to ``dnb.confirm('Pay?')`` in one cell, copied (no secret
    needed: JSON results replay unsigned) onto the record of the same prompt in another
    cell, was consent there. Now an answer is signed for its call: asked again."""
    first, second = (
        "ok = dnb.confirm('Pay?')\nassert ok\n",
        "ok2 = dnb.confirm('Pay?')\nassert ok2\n",
    )
    for answer, cell in (("yes", first), ("no", second)):
        with monkeypatch.context() as mp:
            mp.setenv("DURABLE_NB_ANSWERS", f'["Pay?={answer}"]')
            bob.session("A.ipynb", cell)
    assert bob.session("A.ipynb", first) == ([], [])  # control: the yes replays in its cell
    pick = "WHERE name = 'dnb.confirm' AND decode(result) LIKE "
    [(yes,)] = bob.sql("A.ipynb", f"SELECT result FROM steps {pick} '%true%'")
    bob.sql("A.ipynb", f"UPDATE steps SET result = ? {pick} '%false%'", [yes])
    _, errors = bob.session("A.ipynb", second)
    assert len(errors) == 1 and "nobody can answer" in errors[0], errors
