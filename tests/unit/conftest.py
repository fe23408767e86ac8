"""Unit tests: pure Python, no kernel. Hypothesis without deadlines: CI machines are busy."""

from __future__ import annotations

import sys

import pytest
from hypothesis import settings

settings.register_profile("durable_nb", deadline=None, max_examples=60)
settings.load_profile("durable_nb")


@pytest.fixture
def main():
    """Define in ``__main__`` (a kernel's notebook globals), and take it back after.
    Compiled as a cell is: not with a test module's ``from __future__ import annotations``
    (annotations are evaluated)."""
    ns = vars(sys.modules["__main__"])
    before = set(ns)

    def define(source: str) -> dict:
        exec(compile(source, "<cell>", "exec", dont_inherit=True), ns)
        return ns

    yield define
    for name in set(ns) - before:
        del ns[name]
