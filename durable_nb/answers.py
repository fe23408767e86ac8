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
import time
from collections.abc import Sequence
from typing import Any

from . import runtime
from .errors import AnswerMissing, DurableError
from .steps import step

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
        many times the cell asked it before.
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
    return _answer(prompt, choices, default, False, key)["answer"]


def confirm(prompt: str, *, key: str | None = None) -> bool:
    """Ask a yes/no question (Yes / No buttons); the answer is journaled like :func:`ask`'s."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("dnb.confirm needs a prompt: a non-empty string")
    return bool(_answer(prompt, None, None, True, key)["answer"])


def _ask_now(prompt: str, choices: list | None, default: Any, yes_no: bool,
             key: str | None) -> dict[str, Any]:  # fmt: skip
    """The step's body: the answer from ``--answer``, else from the person."""
    name = key if key is not None else prompt
    given = _given_answers()
    if name in given:
        value = _parse(given[name], choices, yes_no, name)
    else:
        rt = runtime.current()
        wait = rt.question(prompt, choices, yes_no, default) if rt is not None else None
        if wait is None:
            raise AnswerMissing(name, yes_no)
        value = wait()
    return {"answer": value, "by": getpass.getuser(), "at": time.time()}


_answer = step(
    _ask_now,
    name="dnb.ask",
    retries=0,
    non_retryable=(DurableError,),
    key=lambda prompt, choices, default, yes_no, key: key,
)


def _given_answers() -> dict[str, str]:
    raw = os.environ.get(ANSWERS_ENV)
    if not raw:
        return {}
    try:
        answers = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in answers.items()} if isinstance(answers, dict) else {}


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
