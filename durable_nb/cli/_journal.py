"""Finding, opening and copying a notebook's journal for a command.

A journal held by a live kernel ends the command with exit code 3, unless the command
was given ``--copy``: then it reads a snapshot copy of the files.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CommandError, JournalError, JournalLocked
from ._exit import FAILED, HELD, USAGE

if TYPE_CHECKING:
    from ..store import Journal


def journal_path(target: Path) -> Path:
    """The journal of ``target``: itself when it is a ``.duckdb`` file, else its notebook's."""
    from ..store import resolve_path

    target = target.expanduser()
    return target.absolute() if target.suffix == ".duckdb" else resolve_path(target.resolve())


def notebook_of(journal: Path) -> str:
    """Best guess of a journal's notebook without opening it: ``../<stem>.ipynb``."""
    return str(journal.parent.parent / f"{journal.stem}.ipynb")


def held(
    journal: Path, pid: int | None, copy_hint: bool, notebook: Path | None = None
) -> CommandError:
    """The error that ends a command because a live kernel holds ``journal`` (exit 3)."""
    who = f"pid {pid}" if pid else "another process"
    hint = ", or pass --copy to read a snapshot copy" if copy_hint else ""
    notebook = notebook or notebook_of(journal)
    return CommandError(
        HELD,
        f"the journal {journal} (notebook {notebook}) is held by a live kernel, {who}; "
        f"stop that kernel (or shut its notebook down){hint}.",
    )


def ensure_not_held(journal: Path) -> None:
    """End the command (exit 3) if a live kernel holds ``journal``; a damaged one is fine."""
    from ..store import Journal

    try:
        Journal.open(journal).close()
    except JournalLocked as exc:
        raise held(journal, exc.pid, copy_hint=False) from None
    except JournalError:
        pass


@contextlib.contextmanager
def open_journal(journal: Path, copy: bool = False, copy_hint: bool = True) -> Iterator[Journal]:
    """Open ``journal`` (exit 2 when missing, 3 when held unless ``copy``); close it after.

    A copy read while a live kernel holds the journal has ``copied_from`` set to its pid.
    """
    from ..store import Journal, copy_journal

    if not journal.is_file():
        raise CommandError(
            USAGE, f"no journal at {journal}: run the notebook first (durable-nb run)"
        )
    with contextlib.ExitStack() as stack:
        try:
            j = Journal.open(journal)
        except JournalLocked as exc:
            if not copy:
                raise held(journal, exc.pid, copy_hint) from None
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="durable-nb-")))
            try:
                j = Journal.open(copy_journal(journal, tmp), copied_from=exc.pid)
            except JournalError as exc2:
                raise CommandError(FAILED, f"could not read a copy of {journal}: {exc2}") from None
        except JournalError as exc:
            raise CommandError(USAGE, str(exc)) from None
        try:
            yield j
        except JournalError as exc:  # damage met as a page is read, after the open
            raise CommandError(USAGE, str(exc)) from None
        finally:
            j.close()
