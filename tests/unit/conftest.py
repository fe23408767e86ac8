"""Unit tests: pure Python, no kernel. Hypothesis without deadlines: CI machines are busy."""

from __future__ import annotations

import sys

import pytest
from hypothesis import settings

from durable_nb import trust

settings.register_profile("durable_nb", deadline=None, max_examples=60)
settings.load_profile("durable_nb")


@pytest.fixture(scope="session")
def _session_jupyter_data(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("jupyter-data"))


@pytest.fixture(autouse=True)
def jupyter_data(_session_jupyter_data, monkeypatch) -> str:
    """A Jupyter data folder of this session's (its signing secret, the journal template),
    never the person's: ``JUPYTER_DATA_DIR`` set for each test (and the processes it
    starts) and put back after, the secret read anew. One folder for the session: its
    template is built once. A test wanting a folder of its own sets it after this."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", _session_jupyter_data)
    monkeypatch.setattr(trust, "_secret", None)
    return _session_jupyter_data


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
