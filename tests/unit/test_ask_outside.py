"""dnb.ask where nobody can be asked says why and what to do (not "headless")."""

from __future__ import annotations

import pytest

import durable_nb as dnb
from durable_nb import runtime
from durable_nb.errors import AnswerMissing


def test_ask_in_ipython_without_the_extension_says_to_load_it(monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setattr(runtime, "_current", None)
    monkeypatch.delenv("DURABLE_NB_ANSWERS", raising=False)
    InteractiveShell.instance()
    try:
        with pytest.raises(AnswerMissing) as info:
            dnb.confirm("Drain 3 nodes?")
    finally:
        InteractiveShell.clear_instance()
    message = str(info.value)
    assert "extension is not loaded" in message and "%load_ext durable_nb" in message, message
    assert "headless" not in message and "--answer" not in message, message
