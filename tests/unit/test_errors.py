"""errors: one hierarchy; every message says what happened and what to do; all picklable.

Errors cross process boundaries (``dnb.map`` on Dask workers, ``.errors`` of a journaled
failure), so each must survive pickle with its type, message and attributes.
"""

from __future__ import annotations

import pickle

import pytest

from durable_nb import errors as e

CAUSE = OSError(28, "No space left on device")


def examples() -> list[e.DurableError]:
    return [
        e.JournalError("/x/nb.duckdb", "journal /x/nb.duckdb: something; do this"),
        e.JournalLocked("/x/nb.duckdb", 4242),
        e.JournalLocked("/x/nb.duckdb", None),
        e.JournalCorrupt.from_cause("/x/nb.duckdb", ValueError("bad magic")),
        e.JournalTooNew.from_versions("/x/nb.duckdb", 9, 3),
        e.JournalUnwritable.from_cause("/x/nb.duckdb", CAUSE),
        e.UntrustedJournal("/x/nb.duckdb", "journal /x/nb.duckdb is not trusted; trust it"),
        e.ReplayMissing("step 'f' with (1,) is not in the journal"),
        e.StepFailed("provision", [ConnectionError("refused"), TimeoutError("slow")]),
        e.StepFailed("provision", [ValueError("bad")], message="custom"),
        e.StepTimeout("provision", 2.5),
        e.CommandError(2, "no notebook at /x/nb.ipynb"),
        e.BlobDamaged("/x/nb.blobs/0123abcd"),
        e.ExtraMissing("the timeline", "plotly", "timeline"),
        e.ForeignBytecode(b"\xa7\r\r\n", b"\xcb\r\r\n"),
        e.WeakReferenceLost(),
        e.PayloadRefused("holds an object of a type it was not saved with"),
    ]


@pytest.mark.parametrize("err", examples(), ids=lambda x: type(x).__name__)
def test_every_error_survives_pickle(err):
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and str(back) == str(err)
    assert vars(back).keys() == vars(err).keys()
    for name, value in vars(err).items():
        if name == "errors":
            assert [(type(x), str(x)) for x in back.errors] == [(type(x), str(x)) for x in value]
        else:
            assert getattr(back, name) == value, name


def test_every_error_is_a_durable_error():
    for name in e.__all__:
        assert issubclass(getattr(e, name), e.DurableError), name
    assert issubclass(e.StepTimeout, TimeoutError)  # except TimeoutError catches it too


@pytest.mark.parametrize(
    ("err", "what", "todo"),
    [
        (e.JournalLocked("/x/nb.duckdb", 4242), "held by process 4242", "Stop that kernel"),
        (e.JournalLocked("/x/nb.duckdb", None), "held by another process", "restart"),
        (e.JournalCorrupt.from_cause("/x/nb.duckdb", ValueError("bad")), "(bad)", "Move the file"),
        (e.JournalTooNew.from_versions("/x/nb.duckdb", 9, 3), "version 9", "Upgrade"),
        (e.JournalUnwritable.from_cause("/x/nb.duckdb", CAUSE), "No space", "DURABLE_NB_DIR"),
        (e.StepFailed("f", [ValueError("bad")]), "after 1 attempt:", "re-run the cell"),
        (e.StepTimeout("f", 2.5), "timeout of 2.5 s", "raise timeout="),
        (e.BlobDamaged("/x/b/0a"), "/x/b/0a is damaged", "treated as missing"),
        (e.WeakReferenceLost(), "a weak reference came back", "re-run the cell"),
        (e.PayloadRefused("is damaged"), "payload is damaged", "re-run the cell"),
        (
            e.ExtraMissing("the timeline", "plotly", "timeline"),
            "needs plotly",
            'pip install "durable_nb[timeline]"',
        ),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, Exception) else "",
)
def test_messages_say_what_happened_and_what_to_do(err, what, todo):
    message = str(err)
    assert what in message and todo in message, message
    if isinstance(err, e.JournalError):
        assert err.path in message


def test_step_failed_keeps_every_attempt():
    attempts = [ConnectionError("refused"), TimeoutError("slow")]
    err = e.StepFailed("provision", attempts)
    assert err.errors == attempts and err.errors is not attempts
    assert "'provision' failed after 2 attempts: TimeoutError: slow" in str(err)


def test_describe_names_the_type_and_the_message():
    assert e.describe(ValueError("bad value")) == "ValueError: bad value"
    assert e.describe(KeyboardInterrupt()) == "KeyboardInterrupt"
