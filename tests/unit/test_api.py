"""The public surface: ``durable_nb.__all__`` is pinned; everything else may change."""

from __future__ import annotations

import durable_nb

EXPECTED_API = [
    "AnswerMissing",
    "DurableError",
    "JournalCorrupt",
    "JournalError",
    "JournalLocked",
    "JournalTooNew",
    "JournalUnwritable",
    "ReplayMissing",
    "RetryPolicy",
    "StepFailed",
    "StepTimeout",
    "UntrustedJournal",
    "WaitTimeout",
    "ask",
    "confirm",
    "load_ipython_extension",
    "map",
    "now",
    "random",
    "sleep",
    "step",
    "step_id",
    "unload_ipython_extension",
    "uuid4",
    "wait_until",
]

ERRORS = [name for name in EXPECTED_API if name[0].isupper() and name != "RetryPolicy"]


def test_public_api_is_pinned():
    assert sorted(durable_nb.__all__) == EXPECTED_API
    assert len(set(durable_nb.__all__)) == len(durable_nb.__all__)
    for name in EXPECTED_API:
        assert hasattr(durable_nb, name), name


def test_every_public_error_is_a_durable_error():
    for name in ERRORS:
        assert issubclass(getattr(durable_nb, name), durable_nb.DurableError), name


def test_version_is_a_release_string():
    parts = durable_nb.__version__.split(".")
    assert len(parts) >= 2 and all(p.isdigit() for p in parts[:2]), durable_nb.__version__
