"""Which variables a cell reached, and which of them share objects (see the rule in
:mod:`durable_nb.snapshot`'s docstring): from the names it touched, what each reaches
(:func:`codec.encode_reach`: the pickler's memo, or :func:`graph.reach`), the names the
functions reached use, and every variable that shared an object with one of those.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import codec, graph

#: Builtins that keep no reference to what they are given (what they return is kept only
#: when bound to a variable, or displayed: see ``closed`` in snapshot's after_cell).
HARMLESS = frozenset({
    "print", "len", "sum", "min", "max", "abs", "round", "range", "enumerate", "zip",
    "sorted", "reversed", "list", "dict", "set", "frozenset", "tuple", "str", "int", "float",
    "bool", "repr", "any", "all", "isinstance", "hash", "id",
})  # fmt: skip

#: What says whether a cell is closed: :func:`closed`'s answer, asked when it spares a walk.
Closed = Callable[[], set[str] | None]


def never() -> set[str] | None:
    """A cell not known to be closed."""
    return None


@dataclass
class Reached:
    """What one cell reached: ``keys`` (name -> the ids of the data objects it reaches
    that another variable may share), ``kernel`` (name -> a kernel object's type it holds),
    ``plain`` (name -> its pickle, made while walking), ``alone`` (the names whose value is
    plain data that met no code, every object in it but itself held once: Known.alone)."""

    keys: dict[str, set[int]] = field(default_factory=dict)
    kernel: dict[str, str] = field(default_factory=dict)
    plain: dict[str, codec.Encoded] = field(default_factory=dict)
    alone: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, ns: dict[str, Any], user_ns: dict[str, Any], known: Mapping[str, Any],
           touched: set[str], closed: Closed = never
           ) -> Reached:  # fmt: skip
        """The names the cell may have changed, and what each reaches.

        ``ns``: the notebook's variables; ``known``: name -> what the journal holds
        (``obj_id``, ``shares``, ``alone``). A variable of plain data whose last walk found
        every object in it held once, by its container (its keys: its own id), and no code,
        is not walked again when it is the only variable the cell reached (but for its
        instances' classes) and ``closed()`` (asked then only: the names the cell binds, or
        None) says the cell read variables and harmless builtins only, and displayed
        nothing (a new variable: one the cell binds): nothing but a variable can take
        one of its objects then, and no other variable was reached, so none took one or gave
        it one (a cell that reaches two variables walks both). Its pickle is still compared:
        a change in it is saved as always.
        """
        out = cls()
        work: deque[str] = deque(sorted(touched))
        deferred: dict[str, codec.Encoded] = {}
        while True:
            while work:
                name = work.popleft()
                if name in out.keys or name not in ns:
                    continue
                value = ns[name]
                k = known.get(name)
                # Alone when last walked (the same object); or new, bound by this cell: what
                # it holds comes from what the cell read (a closed cell: no other variable).
                # Not a rebound one: its old value may live on (in the output history).
                alone = k is None or (k.alone and k.obj_id == id(value))
                # Plain data is pickled now (once), and when it holds few objects its pickle
                # says what it reaches, as the walk would: one pass instead of two.
                enc, reached = codec.encode_reach(value, user_ns, walk=not alone)
                if enc is not None:
                    out.plain[name] = enc
                if reached is None:
                    deferred[name] = enc
                    reached = codec.root_reach(value, enc, user_ns)
                    out.alone.add(name)
                elif enc is not None and enc.reached is None:  # plain data, walked
                    if reached.keys == {id(value)} and not reached.code:
                        out.alone.add(name)
                out._add(name, reached, work, known)
            if not deferred:
                return out
            if out._lone(deferred, known, ns):
                bound = closed()
                [name] = deferred
                if bound is not None and (name in known or name in bound):
                    return out  # one variable alone: what it shares is what it shared
            for name in sorted(deferred):  # more than one: walked after all
                enc = deferred.pop(name)
                reached = graph.reach(ns[name], user_ns)
                enc.refs = enc.refs | reached.refs
                del out.keys[name]
                out.alone.discard(name)
                out._add(name, reached, work, known)
                if reached.keys == {id(ns[name])} and not reached.code:
                    out.alone.add(name)

    def _lone(self, deferred: dict[str, codec.Encoded], known: Mapping[str, Any],
              ns: dict[str, Any]) -> bool:  # fmt: skip
        """Whether the one variable deferred is all the cell reached, but for the classes
        of its instances (found by their methods' names) holding no data another holds,
        and variables bound to an atom (a loop's counter), which holds nothing."""
        if len(deferred) != 1:
            return False
        [(name, enc)] = deferred.items()
        classes = enc.classes or ()
        return all(
            not self.keys[n] and not (n in known and known[n].shares)
            and (type(ns[n]) in codec.ATOMS or any(ns[n] is c for c in classes))
            for n in self.keys if n != name
        )  # fmt: skip

    def _add(self, name: str, reached: graph.Reach, work: deque[str],
             known: Mapping[str, Any]) -> None:  # fmt: skip
        """Record what ``name`` reaches; queue the names its functions use, and every
        variable that shared an object with it before or shares one now."""
        found = self.keys
        found[name] = mine = reached.keys
        self.kernel[name] = reached.kernel
        work.extend(sorted(n for n in reached.names if n not in found))
        old = known[name].shares if name in known else frozenset()
        if not (mine or old):
            return
        for other, k in known.items():  # a change through one holder shows in all
            if (
                other not in found
                and k.shares
                and not (k.shares.isdisjoint(mine) and k.shares.isdisjoint(old))
            ):
                work.append(other)


def closed(source: str, ns: Mapping[str, Any]) -> set[str] | None:
    """The names a cell's code binds if it reads nothing but the variables ``ns`` and
    :data:`HARMLESS` builtins (names a comprehension or a lambda binds are its own): then
    an object it takes from a variable can go nowhere but into a variable (or the output
    history, which the caller checks); None otherwise (and for IPython syntax)."""
    try:
        tree = ast.parse(source)
    except Exception:
        return None
    read, own, bound = set(), set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            read.add(node.id)
            if isinstance(node.ctx, ast.Store):
                bound.add(node.id)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            return None
        elif isinstance(node, ast.comprehension | ast.Lambda):
            part = node.target if isinstance(node, ast.comprehension) else node.args
            own.update(n.id if isinstance(n, ast.Name) else n.arg for n in ast.walk(part)
                       if isinstance(n, ast.Name | ast.arg))  # fmt: skip
    return None if read - ns.keys() - HARMLESS - own else bound - own
