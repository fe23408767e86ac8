"""Cell sources: identity (the frontend's cell id, else a hash), ``%%durable fresh``, first line."""

from __future__ import annotations

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from durable_nb import cells
from durable_nb.cells import (
    FRESH_LINE,
    IPYTHON_NAMES,
    cell_key,
    first_line,
    is_fresh,
    keyword_only,
    names_used,
    variables,
)

sources = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=80)


@pytest.mark.parametrize(
    "line",
    ["%%durable fresh", "  %%durable fresh", "%%durable   fresh  ", "%%durable fresh # again"],
)
def test_fresh_line_matches(line):
    assert FRESH_LINE.match(line)


@pytest.mark.parametrize(
    "line", ["%durable fresh", "%%durable freshen", "%%durable", "x = 1  # %%durable fresh", ""]
)
def test_fresh_line_does_not_match(line):
    assert not FRESH_LINE.match(line)


def test_first_line_is_the_first_that_is_not_blank():
    assert first_line("\n  \n  x = 1\ny = 2") == "  x = 1"
    assert first_line("x = 1") == "x = 1"
    assert first_line("\n \t\n") == first_line("") == first_line(None) == ""


def test_a_cell_is_fresh_when_its_first_line_says_so():
    assert is_fresh("%%durable fresh\nx = 1")
    assert is_fresh("\n\n  %%durable fresh # again\nx = 1")
    assert not is_fresh("x = 1\n%%durable fresh")
    assert not is_fresh(None)


def test_the_frontends_cell_id_is_the_key():
    assert cell_key("abc-123", "x = 1") == "abc-123"
    assert cell_key("abc-123", "y = 2") == "abc-123"


def test_without_a_cell_id_the_key_is_a_hash_of_the_source():
    # Keys are stored in journals: a change here makes re-run cells replay nothing.
    assert cell_key(None, "x = 1") == "src:71306662c1be9746"
    assert cell_key("", "x = 1") == cell_key(None, "x = 1")
    assert cell_key(None, "x = 2") != cell_key(None, "x = 1")
    assert cell_key(None, "# a comment\nx = 1") != cell_key(None, "x = 1")


@given(sources)
def test_blank_space_around_a_cell_does_not_change_its_key(source):
    assert cell_key(None, f"\n \n{source}\n\t\n") == cell_key(None, source)


@given(sources, st.sampled_from(["%%durable fresh", "  %%durable  fresh # again"]))
def test_marking_a_cell_fresh_does_not_change_its_key(source, mark):
    assume(not is_fresh(source))
    assert cell_key(None, f"{mark}\n{source}") == cell_key(None, source)
    assert cell_key(None, f"\n{mark}\n{source}") == cell_key(None, source)


def _parsed(source: str) -> set[str]:
    """The names of ``source`` as its syntax tree has them (the slow path of names_used)."""
    import ast

    tree = ast.parse(source)
    found = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Global | ast.Nonlocal):
            found.update(node.names)
    return found


def _real_sources() -> list[str]:
    """This package's modules and the corpus notebooks' code cells: code nobody wrote for
    these tests."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sources = [p.read_text() for p in sorted((root / "durable_nb").rglob("*.py"))]
    for nb in sorted((root / "tests" / "corpus").glob("*.ipynb")):
        cells_ = json.loads(nb.read_text())["cells"]
        sources += ["".join(c["source"]) for c in cells_ if c["cell_type"] == "code"]
    return sources


def test_the_words_of_a_cell_hold_every_name_its_code_reads_or_binds():
    """The fast path (words of plain ASCII text) is a superset of the syntax tree's names,
    on real code: the corpus notebooks' cells and this package's own modules."""
    checked = 0
    for source in _real_sources():
        for line in source.splitlines():  # lines without strings or comments
            if line.isascii() and not any(c in line for c in "%!?#'\"\\"):
                try:
                    expected = _parsed(line.strip())
                except SyntaxError:  # a line of a longer statement
                    continue
                assert expected <= names_used(line.strip(), str), line
                checked += 1
    assert checked > 1000


_PIECE = st.text(alphabet="ab #'\"\\\nx{}", max_size=12)


@st.composite
def _literal(draw) -> str:
    """A valid string or bytes literal of any quoting, whose text holds quotes, '#',
    backslashes and braces."""
    text = draw(_PIECE)
    prefix = draw(st.sampled_from(["", "r", "b", "rb", "Br", "u", "R"]))
    quote = draw(st.sampled_from(["'", '"', "'''", '"""']))
    body = text if "r" in prefix.lower() else text.replace("\\", "\\\\")
    if len(quote) == 1:
        body = body.replace("\n", "")
    source = f"{prefix}{quote}{body}{quote}"
    try:
        compile(source, "<literal>", "eval")
    except SyntaxError:
        return repr(text.encode() if "b" in prefix.lower() else text)
    return source


_NAMES = st.sampled_from(["a", "b", "r", "rb", "f", "u", "x_1", "open", "Test"])
_ATOM = st.one_of(
    _NAMES,
    _literal(),
    _NAMES.map(lambda n: f"{n}.attr"),
    st.tuples(_NAMES, _literal()).map(lambda t: f"{t[0]}({t[1]}, k={t[0]})"),
    st.tuples(_NAMES, _NAMES).map(lambda t: f"g({t[0]}={t[1]}, {t[1]} ={t[0]} == x_1)"),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            _NAMES,
            st.lists(_ATOM, min_size=1, max_size=4),
            st.none() | _PIECE.map(lambda t: t.replace("\n", " ")),
        ),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_the_words_outside_strings_and_comments_hold_every_name(lines, end):
    """Generated cells whose literals and comments hold quotes, '#' and backslashes: the
    fast path's words are a superset of the syntax tree's names."""
    source = "\n".join(f"{target} = {' + '.join(atoms)}" + (f"  # {c}" if c is not None else "")
                       for target, atoms, c in lines)  # fmt: skip
    source = source.replace("\n", end)  # a line end is also \r\n or \r to Python (R3-2)
    assume(source.isascii())
    try:
        expected = _parsed(source)
    except SyntaxError:
        return
    words = names_used(source, str)
    assert expected <= words, source
    assert not keyword_only(source, words) & expected, source  # a keyword's name only


def test_a_keyword_is_left_out_only_where_the_syntax_tree_names_it_nowhere():
    """``keyword_only`` never takes out a name the code loads, binds or deletes, on real
    code (each module whole, each cell), every word of it a candidate; and it does take
    out the keywords real code writes (the corpus's widgets: ``options=``, ``value=``)."""
    taken = set()
    for source in _real_sources():
        words = names_used(source, str)
        try:
            named = _parsed(source)
        except SyntaxError:  # (a cell with IPython syntax: magics)
            assert keyword_only(source, words) == set()
            continue
        out = keyword_only(source, words)
        assert not out & named, sorted(out & named)
        taken |= out
    assert {"options", "value", "description"} <= taken


@pytest.mark.parametrize(
    ("source", "out"),
    [
        ("w = Dropdown(options=[1, 2], value=1)", {"options", "value"}),
        ("w = Dropdown(options=options)", set()),  # its value is the variable
        ("f(\n    options\n    =1)", {"options"}),
        ("def g(options=1, *, value=2):\n    return 0", {"options", "value"}),
        ("def g(options=1):\n    return options", set()),  # (the tree: a local; kept)
        ("a, options = 1, 2", set()),  # bound: an object of the same id is checked
        ("options = 1\noptions = 2", set()),  # (not a keyword's place)
        ("f(options == 1)", set()),
        ("f(options <= 1, value != 2)", set()),
        ("class A(Base, options=1):\n    pass", {"options"}),
        ("f(x=lambda options=1: options)", {"x"}),
        ("print('(options=1)')", set()),  # in a string: no keyword (nor a word of the code)
        ("f(')', options=1)  # (", {"options"}),  # brackets in strings and comments: none
        ("%time f(options=1)", set()),  # IPython's syntax: the transform's tree decided
        ("f(options=1", {"options"}),  # (no Python: the cell never ran)
        ("a, options = f(x=1)", {"x"}),
        ("d[f(1), options] = 2", set()),
        ("f(options.a=1)", set()),  # (no Python; ``options.a`` names it)
        ("global options\nf(options=1)", set()),
        ("f(\n    1\n    , options=2)", set()),  # (a line starting with a comma: an escape?)
        ("f(\n    1,\n    options=2)", {"options"}),
        (";print (\na, options = 0, None", set()),  # IPython: print("("), then a target
        (",print (\na, options = 0, None", set()),
        ("  /print (\na, options = 0, None", set()),
        (">>> ;print (\na, options = 1, 2", set()),  # IPython takes the prompt off first
        ("In [1]: ,print (\n   ...: a, options = 1, 2", set()),
    ],
)
def test_keywords_names_are_told_from_variables(source, out):
    assert keyword_only(source, {"options", "value", "x"}) == out
    assert keyword_only(source, set()) == set()  # a candidate only


_WORDS = st.sampled_from(["a", "b", "options", "value"])


@st.composite
def _expression(draw, depth: int = 0) -> str:
    """An expression whose names, keywords and parameters come from one small pool, around
    brackets in strings and comments too."""
    if depth >= 3 or draw(st.booleans()):
        return draw(st.one_of(_WORDS, _literal(), st.just("1")))
    e = [draw(_expression(depth + 1)) for _ in range(2)]
    k = draw(_WORDS)
    return draw(st.sampled_from([
        f"{k}({e[0]}, {draw(_WORDS)}={e[1]})", f"[{e[0]}, {e[1]}]", f"({e[0]}, {e[1]})",
        f"{{{e[0]}: {e[1]}}}", f"(lambda {k}={e[0]}: {e[1]})", f"{e[0]} == {e[1]}",
        f"{e[0]}[{e[1]}]", f"{e[0]}.{k}", f"f(\n  {k} = {e[0]},  # ({e[1]}\n)",
    ]))  # fmt: skip


@st.composite
def _statement(draw) -> str:
    e, (t, u) = draw(_expression()), (draw(_WORDS), draw(_WORDS))
    return draw(st.sampled_from([
        f"{t} = {e}", f"{t}, {u} = {e}, 1", f"{t}[{u}] = {e}", e,
        f"def {t}({u}={e}, *, c=1):\n    return {u}", f"class C({t}={e}):\n    pass",
        f"for {t} in {e}:\n    {u} += 1", f"global {t}\n{u} = {e}",
    ]))  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_statement(), min_size=1, max_size=4))
def test_a_keyword_left_out_is_never_a_name_of_generated_code(statements):
    """Keywords, parameters, tuple targets, lambdas, brackets in strings and comments, all
    drawn from one pool of words: what ``keyword_only`` leaves out, the tree never names."""
    source = "\n".join(statements)
    try:
        named = _parsed(source)
    except SyntaxError:
        return
    assert not keyword_only(source, names_used(source, str)) & named, source


@settings(max_examples=200, deadline=None)
@given(st.lists(_statement(), min_size=1, max_size=3),
       st.sampled_from(["", ";print (", ",print (", "/print (", "  ;f a (", "%time (",
                        ">>> ;print (", ">>>;f (", "In [1]: ,f (", "  ... /f ("]),
       st.integers(0, 3))  # fmt: skip
def test_a_keyword_left_out_is_never_a_name_of_what_ipython_runs(statements, escape, at):
    """IPython's escapes at a line's start (``;f (`` runs ``f("(")``) put brackets in the
    text that are no brackets of the code: what ``keyword_only`` leaves out is never a
    name of the code IPython makes of the cell."""
    from IPython.core.inputtransformer2 import TransformerManager

    if escape:
        statements.insert(min(at, len(statements)), escape)
    source = "\n".join(statements)
    try:
        named = _parsed(TransformerManager().transform_cell(source))
    except SyntaxError:
        return
    assert not keyword_only(source, names_used(source, str)) & named, source


@pytest.mark.parametrize(
    "source",
    [
        "def options():\n    pass",
        "async def options():\n    pass",
        "class options:\n    pass",
        "import json as options",
        "import options.path",
        "from json import dumps as options",
        "try:\n    pass\nexcept Exception as options:\n    pass",
        "match 1:\n    case options:\n        pass",
        "match [1]:\n    case [*options]:\n        pass",
        "match {}:\n    case {**options}:\n        pass",
    ],
)
def test_the_syntax_tree_path_holds_names_bound_without_a_name_node(source):
    """Bound twice in one cell, a new object can take the journal's one's address: the
    name must be among those the cell uses (here on the tree's path: an f-string)."""
    assert "options" in names_used(f'x = f"{{1}}"\n{source}', str)


@pytest.mark.parametrize("attribute", sorted(cells.GLOBALS_BY_NAME))
def test_the_syntax_tree_path_holds_attributes_that_reach_the_globals(attribute):
    """``f.__globals__[k]`` may change any variable: the tree's path (non-ASCII text, an
    f-string) has the attribute as the words' path has the word (helper-98 F2)."""
    for source in (f"x = y.{attribute}  # café", f"x = f'{{1}}' + y.{attribute}"):
        assert attribute in names_used(source, str)


_IPYTHON_LINES = st.sampled_from([
    "%time a = b", "x = %time b", "!echo a", "a = !echo b", "a?", "?a", "a??", "a % b",
    "a != b", "%%capture\na = b", "b = a  # 50%! why?", "print('%d!' % a, '?')",
    "s = '''\n%time a\n!ls\n'''", "a.strftime('%Y-%m-%d')", "# c\x0c?a", ",f a ('''",
    "x = 1  # \x0c%time a", ">>> a = '''", "... !ls",
])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_IPYTHON_LINES, _literal().map(lambda t: f"a = {t}")), min_size=1,
                max_size=4))  # fmt: skip
def test_the_words_hold_every_name_ipython_runs_when_strings_hold_percent_signs(lines):
    """``%``, ``!`` and ``?`` in strings and comments leave a cell on the fast path (its
    words); in its code they are IPython's syntax (magics, shell, help), read through
    IPython's own transform: either way every name of the code IPython runs is there."""
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    source = "\n".join(lines)
    try:
        expected = _parsed(transform(source))
    except SyntaxError:
        return
    assert expected <= names_used(source, transform), source


@pytest.mark.parametrize(
    "source",
    [
        "0,/#b)x=\tx=B!ls \x0cZ?",  # IPython splits lines at a form feed: ``Z?`` is help
        "#, options =r !ls \x0c?%time 'Ra\"\"\"\x0c?options[]'%d'\x0c%BBb",  # (Python: a comment)
        ", options =u\\\nrr'''/\\\n\n!ls \\''''",  # an escape quotes what looked like a string
        ">>> s = '''\n... !ls\n... '''",
        # helper-99: a prompt after what IPython takes for blank; an escape with no %!?;
        # text Python runs as written (Ellipsis lines) that IPython takes for prompts
        "\x1f>>> ,f '''\ny = 1 # %\n# '''",
        "\x1f...: ;g '''\nx = y?\n# '''",
        ",f '''\ny = 1\n# '''",
        "s = '''\n>>> '''\n... ;f ('''\ny = 1\n# ''')",
        "s = '''\n>>> '''\n... % time ('''\ny = 1\n# ''')",
    ],
)
def test_what_ipython_reads_otherwise_than_python_goes_through_its_transform(source):
    """Fuzzing found these (2026-12-05): the words' path blanked text that IPython runs."""
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    assert _parsed(transform(source)) <= names_used(source, transform)


def test_percent_signs_in_strings_and_comments_keep_the_fast_path(monkeypatch):
    """No syntax tree is read for ``strftime('%Y')``, ``print("Done!")`` or ``# why?``;
    one is for ``x % 2`` and ``a != b`` (there IPython's syntax and Python's look alike)."""
    parsed = []
    parse = cells.ast.parse
    monkeypatch.setattr(cells.ast, "parse", lambda *a, **k: parsed.append(1) or parse(*a, **k))
    assert names_used("d.strftime('%Y-%m-%d')", str) == {"d", "strftime"}
    assert names_used('print("Done!")  # why?', str) == {"print"}
    assert names_used("s = '''50%\n?'''", str) == {"s"}
    assert not parsed
    assert names_used("y = x % 2", str) == {"x", "y"}
    assert names_used("a != b", str) == {"a", "b"}
    assert len(parsed) == 2


def test_magics_and_non_ascii_names_are_read_from_the_syntax_tree():
    assert names_used("ﬁle = 1", str) == {"file"}  # NFKC: the name is not the word
    assert names_used("%time x = 1", lambda s: "get_ipython().run_line_magic('time', 'x = 1')\n") \
        == {"get_ipython"}  # fmt: skip
    assert names_used("x = (?", str) == set()  # IPython cannot make it Python: changed nothing
    assert names_used("global a\nb = c.d", str) >= {"a", "b", "c"}
    assert names_used("x = 1  # y", str) == {"x"}  # a comment's words are no names
    # A lone carriage return ends a comment or a line to Python (review3 R3-2).
    assert "big" in names_used("# note\rbig.append(-1)", str)
    assert "big" in names_used("note = 'a \\\r\nb' + str(big.pop()) + 'y'", str)


#: Keys a namespace may hold: the notebook's names, IPython's (``_i12``, ``_12``, ``_``),
#: Python's dunders, and keys that are no name at all (``globals()[1] = 2``).
namespace_keys = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True),
    st.from_regex(r"_{1,3}|_i{1,3}|_i?[0-9]{1,4}|__[a-z]{1,5}__|In|Out|exit|quit", fullmatch=True),
    st.integers(-3, 3),
)


@given(
    keys=st.lists(namespace_keys, unique=True, max_size=40),
    data=st.data(),
)
def test_variables_are_the_names_that_are_not_the_shells_hidden_or_ignored(keys, data):
    """Against the definition, on generated namespaces; asked twice (IPython's names it
    matched once are remembered) and after the namespace changed. A name the shell hid
    (IPython's ``open``) is a variable once the notebook rebinds it: bound to another
    object than the one hidden."""
    user_ns = {k: [k] for k in keys}
    shells = data.draw(st.lists(st.sampled_from(keys), unique=True)) if keys else []
    hidden = {k: user_ns[k] if data.draw(st.booleans()) else None for k in shells}
    names = [k for k in keys if type(k) is str]
    ignored = set(data.draw(st.lists(st.sampled_from(names), unique=True)) if names else [])

    def expected() -> dict:
        return {k: v for k, v in user_ns.items() if type(k) is str and k not in ignored
                and not IPYTHON_NAMES.match(k) and hidden.get(k, object()) is not v}  # fmt: skip

    for _ in range(2):
        got = variables(user_ns, hidden, ignored)
        assert got == expected()
        assert all(got[k] is user_ns[k] for k in got)
    for k in data.draw(st.lists(st.sampled_from(keys), unique=True)) if keys else []:
        del user_ns[k]
    user_ns.update(dict.fromkeys(data.draw(st.lists(namespace_keys, max_size=10)), 0))
    assert variables(user_ns, hidden, ignored) == expected()


NAMES = st.sampled_from(["open", "cfg", "np", "_i1", "_i2", "_7", "get_ipython", "x"])
OPS = st.lists(st.tuples(st.sampled_from(["add", "del", "set"]), NAMES, st.booleans()), max_size=40)


@given(ops=OPS)
@example(  # the last key read taken out and hidden again, where it had been: all read again
    ops=[("add", "np", False), ("add", "cfg", False), ("del", "open", True),
         ("del", "cfg", False), ("add", "open", False), ("add", "cfg", False),
         ("del", "np", True)]
)  # fmt: skip
def test_the_names_a_shell_hid_are_kept_up_with_as_keys_come_and_go(ops):
    """What the shell hides later (``push(..., interactive=False)``, ``%pylab``) is found
    as it comes, and what it drops is forgotten: the names read incrementally equal the
    hidden dict's non-IPython names after any adds, deletes and rebinds (review59 F4)."""
    hidden = {"open": object(), "_i": 1}
    for op, name, look in ops:  # (look: a cell ends; several changes may come between)
        if (op == "add" and name not in hidden) or op == "set":
            hidden[name] = object()
        elif op == "del":
            hidden.pop(name, None)
        if look:
            assert cells._shells_own(hidden) == [n for n in hidden if not IPYTHON_NAMES.match(n)]
