"""Questions to the person on purpose: ``dnb.ask`` and ``dnb.confirm``.

An answer is journaled like a step result (identity: the cell, the key or else the
prompt, and the occurrence), so re-running the cell or resuming after a crash replays
it without asking again; ``%%durable fresh`` asks again. Who answered, and when, is
journaled with it. A headless run takes its answers from ``durable-nb run --answer
KEY=VALUE`` and stops with :class:`~durable_nb.errors.AnswerMissing` without one.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import time
from collections.abc import Sequence
from typing import Any

from . import runtime, trust
from ._ipykernel import kernel
from ._report import report
from .errors import AnswerMissing, DurableError
from .retry import RetryPolicy
from .steps import Step, StepCall

__all__ = ["ANSWERS_ENV", "ask", "confirm"]

#: The environment variable through which ``durable-nb run --answer`` hands answers over.
ANSWERS_ENV = "DURABLE_NB_ANSWERS"

_YES, _NO = {"y", "yes", "true", "1", "ok"}, {"n", "no", "false", "0"}


def ask(prompt: str, *, key: str | None = None, choices: Sequence[Any] | None = None,
        default: Any = None) -> Any:  # fmt: skip
    """Ask the person, wait for the answer in place, and journal it.

    Parameters
    ----------
    prompt : str
        The question, as shown.
    key : str, optional
        The answer's identity, notebook-wide, and the name ``--answer KEY=VALUE`` gives
        it in a headless run; without it the identity is the cell, the prompt and how
        many times the cell asked it before, and ``--answer`` names it by its prompt.
    choices : sequence, optional
        The possible answers (one button each); the answer is one of them. Without
        choices the person types a text.
    default : optional
        Pre-filled in the text box, or the highlighted choice.

    Returns
    -------
    The answer: an element of ``choices``, else the text typed.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("dnb.ask needs a prompt: a non-empty string")
    if choices is not None:
        choices = list(choices)
        if not choices:
            raise ValueError("choices must hold at least one answer, or be None")
        if default is not None and default not in choices:
            raise ValueError(f"default {default!r} is not one of the choices {choices!r}")
    return _answer(_ASK, prompt, choices, default, False, key)


def confirm(prompt: str, *, key: str | None = None) -> bool:
    """Ask a yes/no question (Yes / No buttons); the answer is journaled like :func:`ask`'s."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("dnb.confirm needs a prompt: a non-empty string")
    return _answer(_CONFIRM, prompt, None, None, True, key)


def _answer(which: Step, prompt: str, choices: list | None, default: Any, yes_no: bool,
            key: str | None) -> Any:  # fmt: skip
    """The journaled answer when it can be trusted, else a new one (then journaled)."""
    name = _name(prompt, key)
    call = StepCall.begin(which, (prompt, choices, default, yes_no, key), {})
    if call.done:
        record = call.value
        why = _untrusted(record, name, choices, yes_no, _journal_id(call.rt), call.identity)
        given = _given(name)
        if why is None and given is not None:
            if _parse(given, choices, yes_no, name) != record["answer"]:
                why = f"--answer {name}={given} gives another"
        if why is None:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record["at"]))
            report(
                f"the answer to {_short(prompt)} is replayed from the journal: "
                f"{record['answer']!r} (by {record['by']} at {when}); %%durable fresh asks again"
            )
            return record["answer"]
        report(f"the journaled answer to {_short(prompt)} is not used ({why}); asking again")
    record = call.run_sync()
    # Signed for this journal and this call (its identity: the cell, the occurrence and
    # the epoch): an answer copied from another journal, or moved to another question of
    # this one (the same prompt elsewhere, or before %%durable fresh), is asked again.
    record["sig"] = _sign(name, yes_no, record["answer"], record["by"], record["at"],
                          _journal_id(call.rt), call.identity)  # fmt: skip
    return call.finish(record)["answer"]


def _ask_now(prompt: str, choices: list | None, default: Any, yes_no: bool,
             key: str | None) -> dict[str, Any]:  # fmt: skip
    """The steps' body: the answer from ``--answer``, else from the person (signed by
    :func:`_answer`)."""
    name = _name(prompt, key)
    given = _given(name)
    if given is not None:
        value, by = _parse(given, choices, yes_no, name), f"{getpass.getuser()} (--answer)"
    else:
        rt = runtime.current()
        if rt is None:  # an IPython kernel without the extension
            raise AnswerMissing(
                name, yes_no,
                f"the durable_nb extension is not loaded in this kernel, so {_short(prompt)} "
                "cannot be asked",
                "run %load_ext durable_nb in a cell (or use the 'Python 3 (durable)' kernel), "
                "then run this cell again",
            )  # fmt: skip
        wait = rt.question(prompt, choices, yes_no, default)
        if wait is None and kernel() is None:  # a script without a terminal
            example = json.dumps([f"{name}={'yes' if yes_no else 'VALUE'}"])
            raise AnswerMissing(
                name, yes_no,
                f"nobody can answer {_short(prompt)}: this script has no terminal to ask on",
                f"run it on a terminal, or give the answer in the environment: "
                f"{ANSWERS_ENV}={shlex.quote(example)}",
            )  # fmt: skip
        if wait is None:
            raise AnswerMissing(name, yes_no)
        value, by = wait(), getpass.getuser()
        rt.notify("done", step=f"question: {_short(prompt)}")
    return {"answer": value, "by": by, "at": time.time()}


def _name(prompt: str, key: Any) -> str:
    """What ``--answer NAME=VALUE`` calls this question: its key, else its prompt."""
    return prompt if key is None else str(key)


def _short(prompt: str) -> str:
    return repr(prompt if len(prompt) <= 60 else prompt[:57] + "...")


def _journal_id(rt: Any) -> str | None:
    """The id of the journal an answer is recorded in (None: not journaled)."""
    return getattr(getattr(rt, "journal", None), "id", None)


def _signed(name: str, yes_no: bool, value: Any, by: str, at: float, journal: str | None,
            identity: str) -> str:  # fmt: skip
    """What an answer's signature covers: the journal, the call (its identity), the answer."""
    return json.dumps([journal, identity, name, yes_no, value, by, at], default=repr)


def _sign(name: str, yes_no: bool, value: Any, by: str, at: float, journal: str | None,
          identity: str) -> str:  # fmt: skip
    """This user's signature of an answer to the call ``identity`` in the journal whose
    id is ``journal``."""
    return trust.sign("answer", _signed(name, yes_no, value, by, at, journal, identity))


def _untrusted(record: Any, name: str, choices: list | None, yes_no: bool,
               journal: str | None, identity: str) -> str | None:  # fmt: skip
    """Why a journaled answer cannot be used (None when it can).

    An answer is consent to act: one that another user's journal holds, or another of
    this user's journals (or this one before ``durable-nb trust`` or ``import`` gave it
    a new id), or that was changed, or that does not fit the question asked now, is
    asked again.
    """
    if not isinstance(record, dict) or not {"answer", "by", "at", "sig"} <= record.keys():
        return "it is not an answer durable_nb wrote"
    value, by, at = record["answer"], record["by"], record["at"]
    if not isinstance(at, int | float) or not isinstance(by, str):
        return "it is not an answer durable_nb wrote"
    if not trust.verify("answer", _signed(name, yes_no, value, by, at, journal, identity),
                        record["sig"] if isinstance(record["sig"], str) else None):  # fmt: skip
        return ("it is not signed by you for this question in this journal: another "
                "user's journal or another of yours, another question or epoch, or changed "
                "since")  # fmt: skip
    if yes_no and not isinstance(value, bool):
        return "it is not yes or no"
    if choices is not None and value not in choices:
        return f"it is not one of {choices!r}"
    return None


_POLICY = RetryPolicy(retries=0, non_retryable=(DurableError,))
# One step per kind, so that a key used for ask and confirm names two answers, not one.
_ASK = Step(_ask_now, _POLICY, lambda prompt, choices, default, yes_no, key: key, "dnb.ask")
_CONFIRM = Step(_ask_now, _POLICY, lambda prompt, choices, default, yes_no, key: key,
                "dnb.confirm")  # fmt: skip


def _given(name: str) -> str | None:
    """The value ``durable-nb run --answer NAME=VALUE`` gave (the last one wins), or None."""
    raw = os.environ.get(ANSWERS_ENV)
    if not raw:
        return None
    try:
        given = json.loads(raw)
    except ValueError:
        return None
    found = None
    for item in given if isinstance(given, list) else []:
        if isinstance(item, str) and item.startswith(name + "="):
            found = item[len(name) + 1 :]
    return found


def _parse(text: str, choices: list | None, yes_no: bool, name: str) -> Any:
    """A headless answer as the notebook receives it: a bool, a choice, or the text."""
    if yes_no:
        word = text.strip().lower()
        if word in _YES | _NO:
            return word in _YES
        raise AnswerMissing(name, yes_no, f"--answer {name}={text} is neither yes nor no")
    if choices is None:
        return text
    for choice in choices:
        if str(choice) == text:
            return choice
    raise AnswerMissing(
        name, yes_no, f"--answer {name}={text} is not one of {[str(c) for c in choices]}"
    )
