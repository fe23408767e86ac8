"""What durable_nb reads in a cell's source: its key, the ``%%durable fresh`` mark, its first line.

Which names of the shell's namespace are the notebook's variables (:func:`variables`).

Whether it writes files (a restore never re-runs such a cell). Also how a person finds a
journaled cell in the notebook: its place and first line (the journal's run numbers match
neither the ``[n]`` prompts nor the cell's place).

Imports nothing of the package: the runtime, the extension, the magics and the CLI share it.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import json
import re
from collections.abc import Callable, Container, Iterator
from typing import Any

import xxhash

#: A cell whose first line is this re-runs its steps instead of replaying them.
FRESH_LINE = re.compile(r"^\s*%%durable\s+fresh\s*(#.*)?$")
#: IPython's own names, never saved.
IPYTHON_NAMES = re.compile(r"^(_|__|___|_i|_ii|_iii|_i\d+|_\d+|_ih|_oh|_dh|In|Out|exit|quit"
                           r"|__\w+__)$")  # and Python's own (__builtins__...)  # fmt: skip
#: Names :data:`IPYTHON_NAMES` matched (a match never changes).
_THEIRS: set[str] = set()
_GONE = object()
#: id of a shell's hidden dict -> (the dict, :func:`_shells_own` of it, its keys then).
_SHELLS: dict[int, tuple[dict, list[str], list[Any]]] = {}


def variables(user_ns: dict, hidden: dict, ignored: Container[str]) -> dict[str, Any]:
    """The notebook's variables in ``user_ns``: not IPython's names, Python's, those in
    ``hidden`` (the shell's) or ``ignored`` (``%durable ignore``).

    IPython pushes its names hidden (``_i12``, ``_12``: one or two a cell, never taken
    back), so one pass in C over the namespace leaves them out: a cell costs what the
    namespace holds, not every name IPython has culled since the kernel started. A key
    that is no name (``globals()[1] = 2``) is no variable.
    """
    keys = list(user_ns)  # in one step: a thread adding globals meanwhile breaks no pass
    try:
        mine = list(itertools.filterfalse(hidden.__contains__, keys))
    except KeyboardInterrupt:  # Ctrl-C: the work under way stops
        raise
    except BaseException:  # a key whose hash raises (``globals()[K()] = 1``): names only
        mine = [n for n in keys if type(n) is str and n not in hidden]
    out = {}
    for n in mine:
        if type(n) is not str or n in _THEIRS or n in ignored:
            continue
        if IPYTHON_NAMES.match(n):
            if len(_THEIRS) < 100_000:
                _THEIRS.add(n)
        elif (value := user_ns.get(n, _GONE)) is not _GONE:  # (a thread may delete it)
            out[n] = value
    # The shell's own names the notebook rebound (``open = prices['Open']``: IPython's
    # ``open`` is hidden): the notebook's now, or a restore gave IPython's back, silently.
    for n in _shells_own(hidden):
        value = user_ns.get(n, _GONE)
        if value is not _GONE and value is not hidden.get(n, _GONE) and n not in ignored:
            out[n] = value
    return out


def _shells_own(hidden: dict) -> list[str]:
    """The names the shell hid that are not IPython's history (``open``, ``get_ipython``,
    a startup file's, what ``push(..., interactive=False)`` or ``%pylab`` hid later).

    A dict keeps its keys in the order they came: when those read last time still lead
    (a copy of the keys and a comparison, in C: ~0.3 ms once IPython has hidden 20k names,
    two a cell), only the keys after them are new and matched; otherwise
    (keys were taken out, or taken out and put back: ``cfg`` deleted and hidden again
    came last, where the last key read had been: test_cells) all are read again.
    """
    known = _SHELLS.get(id(hidden))
    if known is None or known[0] is not hidden:
        _SHELLS.clear()  # (one shell a process)
        known = (hidden, [], [])
    _, own, keys = known
    now = list(hidden)  # in one step: a thread adding names meanwhile breaks no pass
    if len(now) == len(keys) and now == keys:
        return own
    if len(now) > len(keys) and now[: len(keys)] == keys:
        tail = now[len(keys) :]
    else:
        own, tail = [], now
    own = own + [n for n in tail if type(n) is str and not IPYTHON_NAMES.match(n)]
    _SHELLS[id(hidden)] = (hidden, own, now)
    return own


def first_line(source: str | None) -> str:
    """The first line of ``source`` that is not blank, as written; ``""`` when none is."""
    return next((line for line in (source or "").splitlines() if line.strip()), "")


def is_fresh(source: str | None) -> bool:
    """Whether the cell starts with ``%%durable fresh`` (blank lines before it aside)."""
    return bool(FRESH_LINE.match(first_line(source)))


def cell_key(cell_id: str | None, source: str) -> str:
    """The cell's identity: the frontend's cell id, else a hash of its source.

    The hash leaves out surrounding blank space and a ``%%durable fresh`` first line,
    so marking a cell fresh (or unmarking it) does not change which cell it is.
    """
    if cell_id:
        return cell_id
    lines = source.strip().splitlines()
    if lines and FRESH_LINE.match(lines[0]):
        lines = lines[1:]
    return "src:" + xxhash.xxh3_64_hexdigest("\n".join(lines).strip().encode())


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def position(notebook: str | None, cell_id: str | None) -> int | None:
    """The 1-based place of code cell ``cell_id`` among the saved notebook's code cells."""
    if not notebook or not cell_id or not notebook.endswith(".ipynb"):
        return None
    try:
        with open(notebook, encoding="utf-8") as f:
            cells = json.load(f).get("cells", [])
        code = [c.get("id") for c in cells if c.get("cell_type") == "code"]
    except (OSError, ValueError, AttributeError):
        return None
    return code.index(cell_id) + 1 if cell_id in code else None


def label(cell: dict[str, Any], notebook: str | None) -> str:
    """``the 3rd code cell ('progress = []')``, or ``the cell 'progress = []'``."""
    first = first_line(cell.get("source"))
    shown = repr(first.strip()[:60])
    n = position(notebook, cell.get("cell_id"))
    return f"the {_ordinal(n)} code cell ({shown})" if n else f"the cell starting {shown}"


def restores(source: str) -> bool:
    """Whether ``source`` (transformed: magics are calls) runs ``%durable restore`` or
    ``resume``: a restore that re-ran it would restore again, without end."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "run_line_magic" and len(node.args) >= 2
                and all(isinstance(a, ast.Constant) for a in node.args[:2])
                and node.args[0].value == "durable"
                and str(node.args[1].value).split()[:1] in (["restore"], ["resume"])):  # fmt: skip
            return True
    return False


def writes_files(source: str) -> bool:
    """Whether running ``source`` opens a file for writing with a literal mode (w, a, x or +).

    Only code that runs when the cell runs counts: a function or lambda body that the
    cell merely defines does not (its decorators and default values do).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return True  # cannot tell: do not re-run it blindly
    return any(_opens_for_writing(node) for node in _executed(tree))


def _executed(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes of ``node`` that run when it runs: not the bodies of functions it defines."""
    yield node
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        children: list[ast.AST] = [*node.decorator_list, node.args]
    elif isinstance(node, ast.Lambda):
        children = [node.args]
    else:
        children = list(ast.iter_child_nodes(node))
    for child in children:
        yield from _executed(child)


def _opens_for_writing(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute) and node.attr in ("write_text", "write_bytes"):
        return True
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if getattr(func, "id", getattr(func, "attr", "")) != "open":
        return False
    # open(path, mode) and io.open(path, mode); Path(path).open(mode) has the mode first.
    first = node.args[:1] if isinstance(func, ast.Attribute) else []
    modes = first + node.args[1:2] + [k.value for k in node.keywords if k.arg == "mode"]
    return any(isinstance(m, ast.Constant) and set(str(m.value)) & set("wax+") for m in modes)


#: Line ends beside ``\\n`` (``str.splitlines``'s, ASCII): IPython reads each part as a line.
_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e"
#: A line IPython reads as an escape (``,f a`` quotes its words, ``;f (`` too: its bracket is
#: text) or a prompt it takes off (``>>> ``), after what IPython takes for blank (``\\s``).
_ESCAPE = re.compile(r"^[^\S\n]*(?:[,;/]|>>>|\.\.\.|(?:\[(?:nav|ins)\] )?In \[\d+\]:)", re.M)
#: An f-string's start: its fields are code inside quotes.
_FSTRING = re.compile(r"(?<![A-Za-z0-9_])[rRbB]?[fF][rRbB]?['\"]")


def _plain(source: str) -> bool:
    """Whether a cell's words are its names (and more): ASCII text with no IPython syntax
    (magics, shell escapes, help, prompts: IPython rewrites those, and its strings there are
    not Python's; ``%``, ``!`` and ``?`` in a string or a comment are none, ``strftime('%Y')``),
    f-string, or line end the scan of words does not know: ``\\r`` (Python's: review3
    R3-2), a form feed and the like (IPython's, which splits lines as ``str.splitlines``
    does: ``# c\\f?x`` runs ``?x``)."""
    if not source.isascii() or any(c in source for c in _BREAKS) or _FSTRING.search(source):
        return False
    if _ESCAPE.search(source):  # helper-99: an escape or prompt quoted what looked like code
        return False
    if "%" in source or "!" in source or "?" in source:
        code = _LITERALS.sub(" ", source)
        return "%" not in code and "!" not in code and "?" not in code
    return True


#: A string literal (an f-string's prefix is never one here), a comment, or a word (group 1),
#: matched left to right: a quote in a comment and a '#' in a string are theirs.
_LITERAL = (
    r"""(?:\b[rRbBuU]{1,2})?(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"|"""
    r"""'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")|\#[^\n]*"""
)
# (Each led by what its match can start with: the scan skips the rest in C, ~2x faster.)
_TOKENS = re.compile(r"(?=[rRbBuU'\"#A-Za-z_])(?:" + _LITERAL + r"|([A-Za-z_][A-Za-z0-9_]*))",
                     re.DOTALL)  # fmt: skip
#: A string literal or a comment (:data:`_TOKENS` without its words).
_LITERALS = re.compile(r"(?=[rRbBuU'\"#])(?:" + _LITERAL + ")", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def names_used(source: str, transform: Callable[[str], str]) -> set[str]:
    """The names a cell's code uses (loads, stores, ``global``/``nonlocal``); ``transform``
    turns IPython syntax into Python when the source is not Python already. May hold more
    (the words of a short cell's code: keywords, attribute names)."""
    if _plain(source):
        # Every name the code uses is a word of its text outside strings and comments:
        # those words are a superset (keywords and attributes too: more is checked, never
        # less), found ~20x faster than parsing and walking the tree. A comment's words
        # are left out (one naming a big variable would have it walked); text that is not
        # a literal (an unclosed quote) keeps its words. Not for non-ASCII text (Python
        # normalises identifiers, NFKC: the word is not the name).
        found = set(_TOKENS.findall(source))
        found.discard("")
        return found
    # Plain Python is its own transform; IPython's (magics, !, ?, prompts, indents) costs
    # ~0.3 ms, and what it handles is not valid Python. Not so where IPython splits lines
    # that Python does not (a form feed in a comment, then ``?x``), nor with a prompt or an
    # escape IPython rewrites in text that is Python too (``...;f (``): both trees then.
    trees = []
    with contextlib.suppress(Exception):
        trees.append(ast.parse(source))
    if not trees or any(c in source for c in _BREAKS) or _ESCAPE.search(source):
        with contextlib.suppress(Exception):
            trees.append(ast.parse(transform(source)))
    return set().union(*map(_tree_names, trees))  # (none: the cell did not run)


def _tree_names(tree: ast.AST) -> set[str]:
    """The names a syntax tree's code loads, binds or deletes: those of its ``global`` and
    ``nonlocal`` statements too, and those it binds without a Name node (``def``,
    ``class``, ``import``, ``except ... as``, a ``match`` capture): bound twice in one
    cell, a new object can take the address of the one the journal holds."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            names.update(node.names)
        elif isinstance(node, _BINDS):
            names.add(getattr(node, "name", None) or getattr(node, "rest", None) or "")
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.partition(".")[0])
        elif isinstance(node, ast.Attribute) and node.attr in GLOBALS_BY_NAME:
            names.add(node.attr)  # (the words' path has it as a word)
    names.discard("")
    return names


#: Attributes through which code reaches a module's globals by name (``f.__globals__[k]``,
#: ``sys._getframe().f_globals``, ``inspect.currentframe().f_locals``): a cell or function
#: naming one may change any variable (:data:`durable_nb.sharing.ANY_NAME`).
GLOBALS_BY_NAME = frozenset({"__globals__", "f_globals", "f_locals", "_getframe", "currentframe"})


#: What binds a name given as text: ``def``, ``class``, ``except E as e``, ``case x``,
#: ``case [*x]``, ``case {**x}``.
_BINDS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.ExceptHandler,
          ast.MatchAs, ast.MatchStar, ast.MatchMapping)  # fmt: skip


#: A word written as a keyword argument's name or a parameter's (``f(options=1)``,
#: ``def g(x=2)``), or as the second target of ``a, b = ...``: after ``(`` or ``,``, before
#: one ``=``. Inside brackets it is only ever a keyword or a parameter (Python has no
#: assignment there); outside, a target.
_KEYWORD = re.compile(r"[(,]\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)")


def keyword_only(source: str, candidates: Container[str]) -> set[str]:
    """Those of ``candidates`` (words of the cell: :func:`names_used`) that its code writes
    only as a keyword argument's or a parameter's name (``Dropdown(options=[1, 2])``
    beside a variable ``options``): the code never reads nor binds such a variable.

    Read from the text as :func:`names_used`'s words are (strings and comments left out):
    every place of the word is one :data:`_KEYWORD` matches inside brackets (one pass).
    Empty for what is not plain ASCII Python (:func:`_plain`: escapes and prompts too):
    :func:`names_used` read the syntax tree, which names no keyword."""
    if "=" not in source or not _plain(source):
        return set()
    code = _LITERALS.sub(" ", source)
    found = [(m.start(1), m.group(1)) for m in _KEYWORD.finditer(code) if m.group(1) in candidates]
    if not found:
        return set()
    marks = [(m.start(), m.group()) for m in _MARKS.finditer(code)]
    places: dict[str, int] = {}
    depth = 0
    for _, mark in sorted(found + marks):  # (a word is an identifier, a mark one character)
        if mark.isidentifier():
            if depth > 0:
                places[mark] = places.get(mark, 0) + 1
        elif mark in "([{":
            depth += 1
        else:
            depth -= 1
    if not places:
        return set()
    words = _WORD.findall(code)
    return {word for word, n in places.items() if words.count(word) == n}


_MARKS = re.compile(r"[()\[\]{}]")
