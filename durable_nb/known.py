"""What the journal holds for each variable (:class:`Known`), and how a variable is
recorded this time (:class:`Encoding`): the records :mod:`durable_nb.snapshot` keeps."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import codec
from .unchanged import Same


@dataclass
class Known:
    """What the journal holds for a name, and the object it was bound to then."""

    obj_id: int
    state: str
    value_id: str | None
    item: int | None
    cell_seq: int
    nbytes: int = 0
    shares: frozenset[int] | set[int] = frozenset()
    refs: frozenset[str] = frozenset()  # notebook globals its payload names
    detail: str | None = None
    same: Same | None = None  # while it holds the bound value, the payload is unchanged
    took: float = 0.0  # its last walk and pickle (s): over ~50 µs, the keyword scan is cheaper
    #: the variables its value names (saved by name: loaded first; graph.Reach.deps), and
    #: those whose attribute it names (``S`` for ``S.d``): it is checked with them
    deps: frozenset[str] | set[str] = frozenset()
    watch: dict[str, int | None] = field(default_factory=dict)  # the name -> what it gave


@dataclass
class Encoding:
    """How one variable is recorded this time."""

    state: str
    detail: str | None = None
    value_id: str | None = None
    nbytes: int = 0
    encoded: codec.Encoded | None = None
    chunks: list[list[str]] = field(default_factory=list)
    item: int | None = None  # index in its group's payload; None when saved alone
    shares: frozenset[int] | set[int] = frozenset()
    refs: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.value_id is None:
            self.value_id = f"{self.state}:{self.detail}"
