"""The store: the journal (DuckDB file, append log, blob files). The only code using DuckDB.

Open a journal with :meth:`Journal.open`; write typed rows (:class:`StepRow`, ...) with
:meth:`Journal.write`; read with its named methods (:class:`~.reads.Reads`). Errors are
raised (:class:`~durable_nb.errors.JournalError`), never printed.
"""

from .files import copy_journal, journal_files, remove_journal, resolve_path
from .journal import FOLD_EVERY, Journal
from .reads import Interrupted, Overview, Timeline
from .schema import (
    CELL_COLUMNS,
    PAYLOAD_COLUMNS,
    RUN_COLUMNS,
    SCHEMA_VERSION,
    STEP_COLUMNS,
    VARIABLE_COLUMNS,
    CellRow,
    MetaRow,
    OutputRow,
    PayloadRow,
    RunRow,
    StepRow,
    VariableRow,
)

__all__ = [
    "CELL_COLUMNS",
    "FOLD_EVERY",
    "PAYLOAD_COLUMNS",
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "STEP_COLUMNS",
    "VARIABLE_COLUMNS",
    "CellRow",
    "Interrupted",
    "Journal",
    "MetaRow",
    "OutputRow",
    "Overview",
    "PayloadRow",
    "RunRow",
    "StepRow",
    "Timeline",
    "VariableRow",
    "copy_journal",
    "journal_files",
    "remove_journal",
    "resolve_path",
]
