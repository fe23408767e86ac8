"""Which variables a cell reached, and which of them share objects (see the rule in
:mod:`durable_nb.snapshot`'s docstring): from the names it touched, what each reaches
(:func:`codec.encode_reach`: the pickler's memo, or :func:`graph.reach`), the names the
functions reached use, and every variable that shared an object with one of those.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import codec, graph, names
from .cells import GLOBALS_BY_NAME
from .errors import describe
from .unchanged import Same, by_name

#: Names whose use may change any variable: a cell using one, or reaching a function that
#: does, is followed by a check of every variable.
ANY_NAME = frozenset({"get_ipython", "exec", "eval", "globals", "vars", "locals", "__import__",
                      "__main__", *GLOBALS_BY_NAME})  # fmt: skip

#: How a value holding a kernel object (a widget's comm) is recorded: for recompute.
HOLDS_KERNEL = "holds the kernel's "
_NONE = object()


@dataclass
class Reached:
    """What one cell reached: ``keys`` (name -> the ids of the data objects it reaches
    that another variable may share), ``kernel`` (name -> a kernel object's type it holds),
    ``plain`` (name -> its pickle, made while walking), ``copies`` (a value's id -> the
    :class:`Same` taken of it and the copy of its items it is pickled from), ``unread``
    (name -> why its value could not be read: the notebook's code raised meanwhile)."""

    keys: dict[str, set[int]] = field(default_factory=dict)
    kernel: dict[str, str] = field(default_factory=dict)
    plain: dict[str, codec.Encoded] = field(default_factory=dict)
    copies: dict[int, tuple[Same, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # name -> its pickle and walk
    unread: dict[str, str] = field(default_factory=dict)
    tied: set[str] = field(default_factory=set)  # queued for sharing with a walked one
    #: name -> the variables its value names (``graph.Reach.deps``), and those whose
    #: attributes it names (``graph.Reach.watch``)
    deps: dict[str, set[str]] = field(default_factory=dict)
    watch: dict[str, dict[str, int | None]] = field(default_factory=dict)

    @classmethod
    def of(cls, ns: dict[str, Any], user_ns: dict[str, Any], known: Mapping[str, Any],
           touched: set[str], settled: Container[str] = frozenset(), look: bool = False,
           vouch: bool = True, clock: Callable[[], float] = time.perf_counter,
           proven: Callable[[str], bool] | None = None) -> Reached:  # fmt: skip
        """The names the cell may have changed, and what each reaches.

        ``ns``: the notebook's variables; ``known``: name -> what the journal holds
        (``shares``). Every name reached is walked: a variable's objects can be taken by
        code no rule follows (a thread, a widget's callback, a helper module's method).
        ``settled``: names not walked even when reached; ``look``: a value that holds a
        kernel object at once (a widget: :func:`graph.kernel_in_state`) is not walked
        either. Both only when the caller re-checks every saved variable anyway: what such
        a value shares, or reaches through its callbacks, is checked then. ``vouch``: a
        sweep may read a :class:`Same` (else none is taken); ``clock`` times each name's
        pickle and walk (:attr:`seconds`: what the sweep's checks cost). ``proven(name)``:
        unchanged (:meth:`Settled.proven`), so not walked unless it shares an object with
        a variable walked (then it is saved with that one, so identity survives).
        """
        out = cls()
        work: deque[str] = deque(sorted(touched))
        # Made at the first definition walked (a watched name's head is one), in one pass
        # over the journal's names, not each cell: an id -> the names holding it; a variable
        # -> the names of its attributes others' payloads hold, what each gave then, and
        # those others (checked when one gives another object now).
        by_id: dict[int, list[str]] = {}
        watchers: dict[str, dict[tuple[str, int | None], list[str]]] | None = None
        defs: dict[int, list[str]] = {}  # a definition's id -> its names walked
        while work:
            name = work.popleft()
            if name in out.keys or name not in ns or name in settled:
                continue
            if proven is not None and name not in out.tied and proven(name):
                continue
            began = clock()
            try:
                if look and (held := graph.kernel_in_state(ns[name])):
                    out.keys[name], out.kernel[name] = set(), held
                    continue
                # Plain data is pickled now (once), and when it holds few objects its
                # pickle says what it reaches, as the walk would: one pass instead of two.
                reached = out._encode(name, ns[name], user_ns, vouch)
            except KeyboardInterrupt:  # Ctrl-C: the work under way stops
                raise
            except BaseException as exc:  # a property, ``__getattr__``...: the one value is lost
                # What it reaches is unknown, so is what changed through it: walk them all.
                out.keys[name], out.unread[name] = set(), describe(exc)
                work.extend(sorted(n for n in ns if n not in out.keys))
                continue
            out.seconds[name] = clock() - began
            if reached.names & ANY_NAME:  # code it holds may change any variable
                work.extend(sorted(n for n in ns if n not in out.keys))
            out._add(name, reached, work, known)
            if names.head(ns[name]) is None:
                continue
            if watchers is None:  # a definition: its other names (``A = C``), its watchers
                watchers = {}
                for other, k in known.items():
                    by_id.setdefault(k.obj_id, []).append(other)
                    for dotted, was in k.watch.items():
                        head = watchers.setdefault(dotted.partition(".")[0], {})
                        head.setdefault((dotted, was), []).append(other)
            defs.setdefault(id(ns[name]), []).append(name)
            work.extend(by_id.get(id(ns[name]), ()))
            for (dotted, was), others in watchers.get(name, {}).items():
                if was is None or id(names.gives(dotted, ns)) != was:
                    work.extend(o for o in others if o not in out.keys)
                    out.tied.update(others)
        for names_ in defs.values():  # one payload, and checked together from now on
            if len(names_) > 1:
                for name in names_:
                    out.keys[name] = {*out.keys[name], id(ns[name])}
        return out

    def _encode(self, name: str, value: Any, user_ns: dict[str, Any],
                vouch: bool = True) -> graph.Reach:  # fmt: skip
        """What ``value`` reaches; its plain pickle goes in :attr:`plain`.

        A value a :class:`Same` can vouch for is pickled (here and in its group's payload:
        :meth:`copy_of`) from the items the ``Same`` read, not from the live container: a
        thread changing it meanwhile leaves the pickle of what the ``Same`` holds to, never
        other items beside a ``Same`` the sweep trusts (review5 F1)."""
        made = self.copies.get(id(value))  # two names, one object: one copy (identity)
        if made is None and vouch and (same := Same.of(value)) is not None:
            made = self.copies[id(value)] = (same, same.copy())
        copy = value if made is None else made[1]
        enc, reached = codec.encode_reach(copy, user_ns)
        if copy is not value and id(copy) in reached.keys:  # the variable's own object
            reached.keys.discard(id(copy))
            reached.keys.add(id(value))
        if enc is not None:
            self.plain[name] = enc
        return reached

    def merge(self, other: Reached) -> None:
        """Take in what a further walk (of names this one had not walked) found."""
        for name in ("keys", "kernel", "plain", "copies", "seconds", "unread", "deps", "watch"):
            getattr(self, name).update(getattr(other, name))
        self.tied |= other.tied

    def copy_of(self, value: Any) -> Any:
        """What ``value`` is pickled from: the copy its :class:`Same` read, or itself."""
        made = self.copies.get(id(value))
        return value if made is None else made[1]

    def members(self, group: list[str], ns: dict[str, Any]) -> tuple:
        """The values a group's payload is pickled from (:meth:`copy_of`). A value another
        member reaches (``y = [x]``) is pickled itself, so that ``y[0] is x`` after a
        restore, and gets no :class:`Same`."""
        for name in group:
            value = ns[name]
            if id(value) in self.copies and any(
                id(value) in self.keys.get(other, ()) for other in group if ns[other] is not value
            ):
                del self.copies[id(value)]
        return tuple(self.copy_of(ns[name]) for name in group)

    def proven(self, value: Any, small: bool) -> Same | None:
        """The :class:`Same` that vouches for ``value``'s payload (pickled from its copy),
        if ``small`` (under the sweep's limit: a ``Same`` keeps the items alive, and big
        ones would stay after the list is emptied)."""
        made = self.copies.get(id(value)) if small else None
        return None if made is None else made[0]

    def _add(self, name: str, reached: graph.Reach, work: deque[str],
             known: Mapping[str, Any]) -> None:  # fmt: skip
        """Record what ``name`` reaches; queue the names its functions use, and every
        variable that shared an object with it before or shares one now."""
        found = self.keys
        found[name] = mine = reached.keys
        self.kernel[name] = reached.kernel
        self.deps[name], self.watch[name] = reached.deps, reached.watch
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
                self.tied.add(other)


def groups(shares: dict[str, set[int] | frozenset[int]]) -> list[list[str]]:
    """The names whose values share objects, as connected groups (sorted).

    Set intersections in C: a variable of 100k objects costs one pass, not 100k steps.
    """
    comps: list[tuple[list[str], set[int] | frozenset[int]]] = []
    for name in sorted(shares):
        keys = shares[name]
        hit = [c for c in comps if not c[1].isdisjoint(keys)]
        if not hit:
            comps.append(([name], keys))
            continue
        names, merged = [name], set(keys)
        for c in hit:
            comps.remove(c)
            names += c[0]
            merged |= c[1]
        comps.append((sorted(names), merged))
    return sorted((names for names, _ in comps), key=lambda g: g[0])


def widget_walks(ns: dict[str, Any], names: set[str], each: float) -> float:
    """What walking those of ``names`` that hold a kernel object at once (a widget: a look
    tells, not a walk) would take, at ``each`` a value."""
    count = 0
    for name in names:
        try:
            count += bool(graph.kernel_in_state(ns[name]))
        except KeyboardInterrupt:  # Ctrl-C: the work under way stops
            raise
        except BaseException:  # a property ``__dict__``: the walk says what it holds
            pass
    return count * each


def tie(found: Reached, known: Mapping[str, Any], refs: Mapping[str, Iterable[str]],
        ns: dict[str, Any], grouped: list[list[str]], tie: bool = True) -> set[str]:  # fmt: skip
    """Tie the names of each circle (:func:`cycles`) among the groups ``found`` walked, by
    what each names (its walk's and its payload's, ``refs``; else the journal's, ``known``):
    each gets the others' value ids in its keys, so they are one payload, and the next cell
    touching one checks them all, as shared objects. Returns the names tied (``tie=False``:
    of the circles, all the names)."""

    def deps(name: str) -> Any:
        got = found.deps.get(name)
        got = got if got is not None else known[name].deps if name in known else ()
        return {*got, *refs[name]} if name in refs else got

    if not any(names.head(ns.get(n)) for n in found.keys):
        return set()  # (a circle holds a definition walked: else its members are unchanged)
    circles = cycles(grouped, deps, ns)  # (``grouped``: groups(found.keys), made already)
    if not tie:
        return {n for c in circles for n in c}
    out: set[str] = set()
    for circle in circles:
        if circle <= found.keys.keys():  # (one not walked cannot be saved with them now)
            ids = {id(ns[n]) for n in circle}
            for name in circle:
                found.keys[name] = {*found.keys[name], *ids}
            out |= circle
    return out


class Either:
    """Names in either of two containers."""

    def __init__(self, one: Container[str], other: Container[str]) -> None:
        self.one, self.other = one, other

    def __contains__(self, name: object) -> bool:
        return name in self.one or name in self.other


def restored(value: Any, ns: dict[str, Any]) -> graph.Reach:
    """What a restored value may share with others, and the variables it names (none when
    its code raised meanwhile: the next cell naming it walks it again)."""
    try:
        return graph.reach(value, ns)
    except KeyboardInterrupt:  # Ctrl-C: the work under way stops
        raise
    except BaseException:
        return graph.Reach()


def cycles(groups: list[list[str]], deps: Callable[[str], Iterable[str]],
           ns: dict[str, Any]) -> list[set[str]]:  # fmt: skip
    """The names to save as one payload because their payloads would name each other in a
    circle, so that neither could load first (``A.other = B`` and ``B.other = A``; a class
    ``Base.child = Sub`` holds; data saved with a class naming another that names it back).

    ``groups``: this cell's groups (names saving together); ``deps(name)``: the variables
    ``name``'s value names (this cell's walk, else the last one's); ``ns``: the
    namespace. Other names are nodes of their own. Each strongly connected set of the
    graph reached from the groups that holds more than one node (Tarjan's, iterative)."""
    node: dict[str, int | str] = {n: i for i, g in enumerate(groups) for n in g}

    def after(v: int | str) -> Iterator[int | str]:
        for n in groups[v] if type(v) is int else (v,):
            for h in deps(n):
                if h in ns and (w := node.get(h, h)) != v:
                    yield w

    index: dict[int | str, int] = {}
    low: dict[int | str, int] = {}
    stack: list[int | str] = []
    found: list[set[str]] = []
    for start in range(len(groups)):
        # A circle's every group is named by another, so holds a definition: none else starts.
        if start in index or not any(names.head(ns.get(n)) for n in groups[start]):
            continue
        index[start] = low[start] = len(index)
        stack.append(start)
        work = [(start, after(start))]
        while work:
            v, successors = work[-1]
            for w in successors:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    work.append((w, after(w)))
                    break
                if w in stack:  # (on the stack: of this strongly connected set)
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    part = stack[stack.index(v) :]
                    del stack[stack.index(v) :]
                    if len(part) > 1:
                        found.append({n for c in part for n in (groups[c] if type(c) is int
                                                                else (c,))})  # fmt: skip
    return found


class Settled:
    """Names a cell's save neither walks nor pickles again (a name is looked at as the walk
    reaches it), each still bound to the very object it was saved as:

    - one in ``named``, the library's module, class or function it was saved as by name
      (:func:`unchanged.by_name`): its payload is its name, and it holds no data;
    - with :attr:`kernel` (a cell that re-checks every saved variable), one that held the
      kernel when saved and holds it at once (a widget: :func:`graph.kernel_in_state`; a
      closed one, or a dict that dropped one, is walked): walking it (~0.1 ms a widget)
      finds nothing to do, since what it shares, or reaches through callbacks, is
      re-checked anyway.
    """

    def __init__(self, known: Mapping[str, Any], ns: dict[str, Any],
                 named: Mapping[str, Any]) -> None:  # fmt: skip
        self.known, self.ns, self.named = known, ns, named
        self.kernel = False

    def __contains__(self, name: str) -> bool:
        k, ns = self.known.get(name), self.ns
        if k is None or name not in ns or id(ns[name]) != k.obj_id:
            return False
        value = ns[name]
        if k.state == "recompute":
            return (self.kernel and (k.detail or "").startswith(HOLDS_KERNEL)
                    and bool(graph.kernel_in_state(value)))  # fmt: skip
        return self.named.get(name) is value and by_name(value)

    def proven(self, name: str) -> bool:
        """Whether ``name``'s saved value is unchanged by :class:`Same`'s proof (the very
        container, holding the very atoms: numbers, strings): named by a cell, or by one
        that may change any variable, it is not walked; a changed variable sharing its
        container still reaches it (then it is walked, and saved with that one: identity).
        Not one holding tuples: a walk keys an object with one holder only as that holder
        is walked (``first = rows[0][1]``: review59 F1)."""
        k = self.known.get(name)
        same = None if k is None else k.same
        return same is not None and same.flat and same.holds(self.ns.get(name, _NONE))
