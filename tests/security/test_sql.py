"""Issue 11, point 7: ``%durable sql`` reads the journal and never changes it."""

from __future__ import annotations


def test_durable_sql_refuses_every_write_and_the_journal_stays_whole(start_kernel):
    k = start_kernel()
    k.ok("import durable_nb as dnb\n@dnb.step\ndef f():\n    return 1\nf()")
    for sql in (
        "DROP TABLE steps",
        "DELETE FROM steps",
        "SELECT 1; DROP TABLE steps",
        "EXPLAIN ANALYZE DELETE FROM steps",
        "WITH a AS (SELECT 1) DELETE FROM steps",
        "UPDATE meta SET value = 'x'",
        "CHECKPOINT",
    ):
        result = k.run(f"%durable sql {sql}")
        assert not result.ok and "UsageError" in str(result), (sql, str(result))
        assert "only reads the journal" in str(result), str(result)
    # Reads work (the control), and the journal is whole.
    n = k.value("%durable sql SELECT count(*) AS n FROM steps WHERE name = 'f'")
    assert n.split()[-1] == "1", n
    for sql in ("DESCRIBE steps", "SHOW TABLES", "SUMMARIZE steps", "EXPLAIN SELECT 1"):
        k.ok(f"%durable sql {sql}")
