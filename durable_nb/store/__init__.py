"""The store: the journal (DuckDB file, append log, blob files). The only code using DuckDB.

Open a journal with :meth:`Journal.open`; write typed rows (:class:`StepRow`, ...) with
:meth:`Journal.write`; read with its named methods (:class:`~.reads.Reads`). Errors are
raised (:class:`~durable_nb.errors.JournalError`), never printed.
"""

from typing import TYPE_CHECKING

from .. import _lazy
from .files import (
    blobs_path,
    check_folder,
    copy_journal,
    journal_files,
    remove_journal,
    resolve_path,
    write_whole,
)
from .schema import (
    CELL_COLUMNS,
    PAYLOAD_COLUMNS,
    RUN_COLUMNS,
    SCHEMA_VERSION,
    STEP_COLUMNS,
    UNSAVED,
    VARIABLE_COLUMNS,
    CellRow,
    MetaRow,
    OutputRow,
    PayloadRow,
    Row,
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
    "UNSAVED",
    "VARIABLE_COLUMNS",
    "CellRow",
    "Interrupted",
    "Journal",
    "MetaRow",
    "OutputRow",
    "Overview",
    "PayloadRow",
    "Row",
    "RunRow",
    "StepRow",
    "Timeline",
    "VariableRow",
    "blobs_path",
    "check_folder",
    "copy_journal",
    "journal_files",
    "remove_journal",
    "resolve_path",
    "write_whole",
]

if TYPE_CHECKING:
    from .journal import FOLD_EVERY, Journal
    from .reads import Interrupted, Overview, Timeline

#: Imported on first use (PEP 562): a kernel's main thread imports the row types only,
#: its journal opens (journal.py and what it imports) in the opening thread.
_LAZY = {
    **dict.fromkeys(("FOLD_EVERY", "Journal"), "journal"),
    **dict.fromkeys(("Interrupted", "Overview", "Timeline"), "reads"),
}
__getattr__, __dir__ = _lazy.names(__name__, _LAZY, globals())
