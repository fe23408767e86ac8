"""Cell identity: the frontend's cell id, else a hash of the source; ``%%durable fresh``."""

from __future__ import annotations

import pytest

from durable_nb.runtime import FRESH_LINE, cell_key


@pytest.mark.parametrize(
    "line",
    ["%%durable fresh", "  %%durable fresh", "%%durable   fresh  ", "%%durable fresh # again"],
)
def test_fresh_line_matches(line):
    assert FRESH_LINE.match(line)


@pytest.mark.parametrize(
    "line", ["%durable fresh", "%%durable freshen", "%%durable", "x = 1  # %%durable fresh", ""]
)
def test_fresh_line_does_not_match(line):
    assert not FRESH_LINE.match(line)


def test_the_frontends_cell_id_is_the_key():
    assert cell_key("abc-123", "x = 1") == "abc-123"
    assert cell_key("abc-123", "y = 2") == "abc-123"


def test_without_a_cell_id_the_key_is_a_hash_of_the_source():
    key = cell_key(None, "x = 1")
    assert key.startswith("src:") and len(key) == 4 + 16
    assert cell_key("", "x = 1") == key
    assert cell_key(None, "x = 2") != key


def test_the_source_key_ignores_the_fresh_line_and_surrounding_blank_lines():
    key = cell_key(None, "x = 1")
    assert cell_key(None, "\n\nx = 1\n  \n") == key
    assert cell_key(None, "%%durable fresh\nx = 1") == key
    assert cell_key(None, "%%durable fresh # again\n\nx = 1\n") == key
    assert cell_key(None, "# a comment\nx = 1") != key
