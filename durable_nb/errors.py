"""The errors durable_nb raises: one small hierarchy under :class:`DurableError`.

Every message says what happened and what to do next.
"""

from __future__ import annotations

import builtins
import os
import reprlib
import shlex

__all__ = [
    "AnswerMissing",
    "BlobDamaged",
    "CommandError",
    "DurableError",
    "ExtraMissing",
    "ForeignBytecode",
    "JournalCorrupt",
    "JournalError",
    "JournalLocked",
    "JournalTooNew",
    "JournalUnwritable",
    "ReplayMissing",
    "SecretRefused",
    "StepFailed",
    "StepTimeout",
    "UntrustedJournal",
    "WaitTimeout",
]


def describe(exc: BaseException) -> str:
    """``Type: message``, or just ``Type`` when the message is empty (or cannot be read:
    its ``__str__`` is the notebook's code).

    Where durable_nb runs the notebook's code (a ``__reduce__``, a property read while
    saving) it catches ``BaseException`` but ``KeyboardInterrupt``: a hook may raise
    anything (``SystemExit`` from a ``__reduce__`` ended the kernel; an
    ``asyncio.CancelledError`` left every later cell without a reply), and only Ctrl-C
    stops the work under way.
    """
    try:
        message = str(exc)
    except KeyboardInterrupt:  # Ctrl-C: the work under way stops
        raise
    except BaseException:
        message = ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is DuckDB's report of the person's Ctrl-C: a ``RuntimeError('Query
    interrupted')`` on the main thread (DuckDB 2), or its ``InterruptException``."""
    if type(exc).__name__ == "InterruptException":
        return True
    return type(exc) is RuntimeError and str(exc).startswith("Query interrupted")


class DurableError(Exception):
    """Base class of every error raised by durable_nb."""


def _first_line(cause: BaseException) -> str:
    """A cause's message on one line (DuckDB's add the query and a caret below)."""
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def _reason(cause: BaseException) -> str:
    """The first cause's words: another durable_nb message is not quoted whole."""
    return getattr(cause, "reason", None) or _first_line(cause)


#: How a problem that keeps an existing journal closed ends its message.
_STOPS = (
    "this kernel does not journal, and a step call stops rather than run again what the "
    "journal may hold. "
)
_OFF = "; or run %durable off to run steps un-journaled on purpose."


class BlobDamaged(DurableError, OSError):
    """A payload file's content does not match its name (the hash of what was written).

    An ``OSError``: whoever treats a missing file as missing treats a damaged one alike.
    """

    def __init__(self, path: str) -> None:
        super().__init__(
            f"blob file {path} is damaged (its content does not match its hash); it is "
            "treated as missing: a step that used it runs again, a variable is recomputed "
            "or left out. Check the disk, or restore the folder from a copy."
        )
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self):
        return (type(self), (self.path,))


class JournalError(DurableError):
    """The journal cannot be used; the notebook goes on without it."""

    #: True when the journal exists and may hold results this kernel cannot read (held,
    #: damaged, too new): a step call then stops (:meth:`stopped`) instead of running.
    holds_steps = False

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path

    def __reduce__(self):
        return (type(self), (self.path, str(self)))

    def stopped(self, step: str) -> JournalError:
        """The error a call of ``step`` raises while this problem keeps the journal closed."""
        text = f"step {step!r} did not run: {self}"
        if "%durable off" not in text:
            text += " Or run %durable off to run steps un-journaled on purpose."
        make, (*head, _) = self.__reduce__()[:2]
        return make(*head, text)


class JournalLocked(JournalError):
    """Another process holds the journal (DuckDB allows one writer per file)."""

    def __init__(self, path: str, pid: int | None, message: str | None = None) -> None:
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            path,
            message
            or f"journal {path} is held by {holder}: {_STOPS}Stop that kernel (or use another "
            f"notebook name / DURABLE_NB_DIR) and restart this one to journal{_OFF}",
        )
        self.pid = pid

    holds_steps = True

    def __reduce__(self):
        return (type(self), (self.path, self.pid, str(self)))


class JournalCorrupt(JournalError):
    """The journal file is damaged, truncated or not a DuckDB file."""

    holds_steps = True

    @classmethod
    def from_cause(cls, path: str, cause: BaseException) -> JournalCorrupt:
        """The damage ``cause`` says; DuckDB's word for the person's Ctrl-C is no damage:
        raised again as a ``KeyboardInterrupt`` (helper-105 H1, helper-106 F1: a journal
        was set aside as unreadable). Every caller that takes an error for damage asks."""
        if _interrupted(cause):
            raise KeyboardInterrupt(str(cause)) from cause
        return cls(
            path,
            f"journal {path} cannot be read ({_first_line(cause)}): {_STOPS}Move the file "
            "aside (e.g. to .bak) and restart the kernel to start a new journal, or restore "
            f"it from a copy{_OFF}",
        )


class NotAJournal(JournalCorrupt):
    """The file is a DuckDB database of something else: it holds no step results."""

    holds_steps = False


class JournalTooNew(JournalError):
    """The journal was written by a newer durable_nb."""

    holds_steps = True

    @classmethod
    def from_versions(cls, path: str, found: int, supported: int) -> JournalTooNew:
        return cls(
            path,
            f"journal {path} has schema version {found}, newer than this durable_nb "
            f"supports ({supported}): {_STOPS}Upgrade durable_nb (pip install -U durable_nb)"
            f"{_OFF}",
        )


class JournalUnwritable(JournalError):
    """The journal folder or disk refuses writes (read-only, full)."""

    #: The disk's own words ("No space left on device"), without this class's advice.
    reason: str | None = None

    def __reduce__(self):
        return (type(self), (self.path, str(self)), vars(self))

    @classmethod
    def from_cause(cls, path: str, cause: BaseException) -> JournalUnwritable:
        err = cls(
            path,
            f"cannot write the journal at {path} ({_first_line(cause)}); durable_nb steps aside "
            "and the notebook runs un-journaled. Free disk space or set "
            "DURABLE_NB_DIR to a writable folder, then restart the kernel.",
        )
        err.reason = _reason(cause)
        return err

    @classmethod
    def read_only(cls, path: str, cause: BaseException, completed: int) -> JournalUnwritable:
        """The journal is kept for replay only: what it holds replays, nothing is written."""
        return cls(
            path,
            f"cannot write the journal at {path} ({_reason(cause)}): it is used read-only, "
            f"so its {completed} completed step{'s' if completed != 1 else ''} replay; new "
            "steps run but are not journaled, and the namespace is not snapshotted. Free "
            "disk space or make the file and its folder writable, then restart the kernel "
            "to journal again.",
        )


class UntrustedJournal(DurableError):
    """The journal holds content this user did not sign: it is not unpickled nor run."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path

    def __reduce__(self):
        return (type(self), (self.path, str(self)))


class ForeignRun(DurableError):
    """A cell execution of the journal is another notebook's work: not restored nor resumed."""

    def __init__(self, seq: int, whose: str | None, mine: str | None) -> None:
        def name(path: str | None) -> str:
            return f"notebook {path}" if path else "a kernel that did not know its notebook"

        super().__init__(
            f"cell execution {seq} of this journal is the work of {name(whose)}, not of this "
            f"one ({name(mine)}): nothing restored; give each notebook a journal of its own "
            "(a DURABLE_NB_DIR per folder)"
        )
        self.seq, self.whose, self.mine = seq, whose, mine

    def __reduce__(self):
        return (type(self), (self.seq, self.whose, self.mine))


class RestoreError(DurableError):
    """A restore cannot be done as asked: nothing was restored."""


class ForeignBytecode(DurableError, ValueError):
    """A function saved by value holds the bytecode of another Python version."""

    def __init__(self, theirs: bytes, ours: bytes) -> None:
        super().__init__(
            f"a function was saved by another Python version (bytecode magic "
            f"{theirs.hex()}, this one's is {ours.hex()}), and its code is not run here: "
            "re-run the cell that defines it"
        )
        self.theirs, self.ours = theirs, ours

    def __reduce__(self):
        return (type(self), (self.theirs, self.ours))


class WeakReferenceLost(DurableError, ValueError):
    """A saved weak reference came back pointing at an object the value no longer holds."""

    def __init__(self) -> None:
        super().__init__(
            "a weak reference came back pointing at an object nothing restored with it "
            "holds (it would read None where it read an object): re-run the cell that makes it"
        )

    def __reduce__(self):
        return (type(self), ())


class PayloadRefused(DurableError, ValueError):
    """A saved value's payload holds what the value was never saved with: not restored."""

    def __init__(self, why: str) -> None:
        super().__init__(f"its saved payload {why}: it is not restored; re-run the cell "
                         "that makes it")  # fmt: skip
        self.why = why

    def __reduce__(self):
        return (type(self), (self.why,))


class NamespaceNotSaved(RestoreError):
    """A cell ran to its end but its snapshot did not complete: no restore stops there."""

    def __init__(self, seq: int, why: str, before: int) -> None:
        # The reason is the journal's text: one short printable line, whatever it holds.
        why = "".join(c if c.isprintable() else " " for c in " ".join(str(why).split())[:200])
        at = f"%durable restore --at {before}" if before else "none: no cell before it was saved"
        super().__init__(
            f"cell execution {seq} ran, but its namespace was not saved ({why}): nothing "
            f"restored; the last namespace saved whole before it is as of cell {before} "
            f"({at}), then re-run the cells after it yourself"
        )
        self.seq, self.why, self.before = seq, why, before

    def __reduce__(self):
        return (type(self), (self.seq, self.why, self.before))


class SecretRefused(DurableError):
    """This user's signing secret could be known to someone else, so it is not used."""

    def __init__(self, path: str | os.PathLike, why: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f"the signing secret {path} {why}, so it is not used: anyone who can read or "
            "replace it could sign a journal as you. Records from other journals and "
            "earlier kernels are not loaded until it is fixed. Delete it (durable_nb makes "
            f"a new one, mode 0600), then `durable-nb trust` your own journals again: rm {path}"
        )
        self.path, self.why = str(path), why

    def __reduce__(self):
        return (type(self), (self.path, self.why, str(self)))


class CommandError(DurableError):
    """A ``durable-nb`` command stops: its message for the person and its exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self):
        return (type(self), (self.code, str(self)))


class AnswerMissing(DurableError):
    """``dnb.ask``/``dnb.confirm`` in a run where nobody can answer, and no answer was given."""

    def __init__(self, name: str, yes_no: bool = False, why: str | None = None,
                 how: str | None = None) -> None:  # fmt: skip
        example = "yes" if yes_no else "VALUE"
        flag = f"--answer {shlex.quote(f'{name}={example}')}"
        super().__init__(
            (why or f"nobody can answer {name!r} in this run (headless)")
            + "; "
            + (how or f"the run stops here. Run it again with {flag} (completed steps replay).")
        )
        self.name, self.yes_no, self.why, self.how = name, yes_no, why, how

    def __reduce__(self):
        return (type(self), (self.name, self.yes_no, self.why, self.how))


class ExtraMissing(DurableError, ImportError):
    """A feature needs an optional dependency that is not installed."""

    def __init__(self, what: str, package: str, extra: str) -> None:
        super().__init__(
            f"{what} needs {package}, which is not installed here: "
            f'pip install "durable_nb[{extra}]" (or pip install {package}), then try again.'
        )
        self.what, self.package, self.extra = what, package, extra

    def __reduce__(self):
        return (type(self), (self.what, self.package, self.extra))


class ReplayMissing(DurableError):
    """Strict replay met a step call the journal has no result for."""


def not_in_journal(name: str, step: str, args: tuple | None, kwargs: dict | None,
                   recorded: str | None, cell: tuple[int, str, str], journal_open: bool,
                   ) -> Exception:  # fmt: skip
    """The error a strict replay raises for call ``step(*args, **kwargs)`` of step ``name``,
    which the journal has no result for (``recorded``: the final error it ended with), in
    ``cell`` (its number, first line and key)."""
    seq, first, key = cell
    where = f"cell {seq} ({first!r}, cell key {key})" if seq else "this code"
    if recorded is not None:  # the recorded outcome was a final error: raise it again
        ename, _, text = recorded.partition(": ")
        if ename == "StepFailed":
            return StepFailed(name, [], text)
        cls = getattr(builtins, ename, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            return cls(text)
        return StepFailed(name, [], f"step {name!r} ended with {recorded} when recorded")
    r = reprlib.Repr()
    r.maxstring, r.maxother = 80, 80
    if args is None:
        call = "(arguments not known here)"
    else:
        shown = [r.repr(a) for a in args] + [f"{k}={r.repr(v)}" for k, v in (kwargs or {}).items()]
        call = f"({', '.join(shown)})"
    if not journal_open:
        return ReplayMissing(f"strict replay: no journal is open to answer step {step}{call}")
    return ReplayMissing(
        f"strict replay: step {step}{call} in {where} is not in the journal, and a "
        "replay calls nothing external. The notebook or its inputs differ from the "
        "recorded run: run it for real (durable-nb run) to record this call, or "
        "%durable replay off."
    )


class StepFailed(DurableError):
    """A step failed on every attempt its retry policy allowed.

    Attributes
    ----------
    step : str
        The step's name.
    errors : list of BaseException
        Each attempt's error, oldest first; the last one is also ``__cause__``.
    """

    def __init__(self, step: str, errors: list[BaseException], message: str | None = None):
        last = errors[-1] if errors else None
        super().__init__(
            message
            or f"step {step!r} failed after {len(errors)} attempt"
            f"{'s' if len(errors) != 1 else ''}: {describe(last)}. "
            "Fix the cause and re-run the cell: completed steps replay, this one runs again."
        )
        self.step = step
        self.errors = list(errors)

    def __reduce__(self):
        return (type(self), (self.step, self.errors, str(self)))


class StepTimeout(DurableError, TimeoutError):
    """One attempt of a step ran longer than its ``timeout`` (retried like any error)."""

    def __init__(self, step: str, timeout: float, message: str | None = None):
        super().__init__(
            message
            or f"step {step!r} attempt exceeded its timeout of {timeout:g} s "
            "(raise timeout= on the step if the call is legitimately slow)"
        )
        self.step = step
        self.timeout = timeout

    def __reduce__(self):
        return (type(self), (self.step, self.timeout, str(self)))


class WaitTimeout(DurableError, TimeoutError):
    """``dnb.wait_until`` reached its timeout before its check came true."""

    def __init__(self, check: str, timeout: float, checks: int, message: str | None = None):
        super().__init__(
            message
            or f"dnb.wait_until({check}) gave up: not true after {timeout:g} s ({checks} "
            "checks). The deadline is recorded, so re-running the cell gives up again: put "
            "%%durable fresh at the top of the cell to wait anew, or pass a longer timeout."
        )
        self.check, self.timeout, self.checks = check, timeout, checks

    def __reduce__(self):
        return (type(self), (self.check, self.timeout, self.checks, str(self)))
