"""classes: notebook classes saved by value with the C pickler, not dill.

A restored class must be the class: the same namespace, bases, metaclass, methods that
answer the same (``super()`` included), properties, class and static methods, a named
``cached_property``, a dataclass's fields (its sentinels the very ``dataclasses`` ones),
an ABC's abstract methods; what this cannot save exactly goes to dill as before.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import io
import pickle
import sys
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_nb import classes, codec


def round_trip(cls: type) -> tuple[codec.Encoded, type]:
    """``cls`` saved by value, loaded as a restore does (notebook names from ``__main__``)."""
    ns = vars(sys.modules["__main__"])
    enc = codec.encode(cls, ns, (cls,))
    return enc, codec.decode(enc.codec, enc.stream, enc.buffers, resolve=ns.__getitem__)


#: A class's source, made of optional parts: (line(s), needs a __dict__).
PARTS = {
    "doc": '    """A class of the notebook."""',
    "data": "    table = {'a': [1, 2.5, None], 'b': ('x', b'y')}",
    "method": "    def method(self, k=3):\n        return ['method', k, self.base()]",
    "super": "    def base(self):\n        return ['sub', super().base()]",
    "property": "    @property\n    def prop(self):\n        'its doc'\n        return 'prop'",
    "setter": "    @prop.setter\n    def prop(self, v):\n        raise AttributeError(v)",
    "classmethod": "    @classmethod\n    def make(cls):\n        return cls.__name__",
    "staticmethod": "    @staticmethod\n    def helper(x=2):\n        return x * 2",
    "async": "    async def job(self):\n        return 'job'",
    "nested": "    class Inner:\n        def inner(self):\n            return 'inner'",
    "lambda": "    pick = staticmethod(lambda x: x + 1)",
}
CACHED = "    @functools.cached_property\n    def cached(self):\n        return ['cached']"
FIELDS = (
    "    x: int = 1",
    "    y: list[int] = dataclasses.field(default_factory=list, metadata={'unit': 's'})",
    "    z: str = dataclasses.field(default='z', repr=False, compare=False)",
    "    w: 'dict' = dataclasses.field(default_factory=dict, kw_only=True)",
    "    o: typing.Optional[int] = None",
    "    u: typing.Union[int, typing.List['C']] = 0",
    "    n: typing.Annotated[int, 'unit', ('s', 1)] = 2",
    "    lit: typing.Literal['a', 'b'] = 'a'",
    "    fn: typing.Callable[[int], typing.Any] = dataclasses.field(default=print, repr=False)",
    "    cv: typing.ClassVar[int] = 5",
)


@st.composite
def class_sources(draw) -> tuple[str, str]:
    """Source for ``Base`` (bound by name) and a class ``C`` of random parts."""
    kind = draw(st.sampled_from(["plain", "slots", "dataclass", "frozen", "abc"]))
    parts = draw(st.lists(st.sampled_from(sorted(PARTS)), unique=True))
    if "setter" in parts and "property" not in parts:
        parts.remove("setter")
    lines = [PARTS[p] for p in sorted(parts, key=list(PARTS).index)]
    if kind not in ("slots", "frozen") and draw(st.booleans()):
        lines.append(CACHED)
    head = "class C(Base):"
    if kind == "slots":
        lines.insert(0, "    __slots__ = ('a', '__weakref__')")
    elif kind in ("dataclass", "frozen"):
        fields = draw(st.lists(st.sampled_from(FIELDS), unique=True))
        lines = sorted(fields, key=FIELDS.index) + lines
        order = draw(st.booleans())
        head = f"@dataclasses.dataclass(frozen={kind == 'frozen'}, order={order})\n{head}"
    elif kind == "abc":
        head = "class C(Base, abc.ABC):"
        lines.append("    @abc.abstractmethod\n    def must(self):\n        ...")
    body = "\n".join(lines) or "    pass"
    base = "class Base:\n    __slots__ = ()\n    def base(self):\n        return 'base'\n"
    imports = "import abc, dataclasses, functools, typing\n"
    return imports + base, f"{head}\n{body}\n"


def answers(cls: type) -> dict:
    """What ``cls`` and an instance of it answer (an ABC: a concrete subclass's)."""
    if getattr(cls, "__abstractmethods__", None):
        with pytest.raises(TypeError):
            cls()
        cls = type("Concrete", (cls,), {"must": lambda self: "must"})
    obj = cls()
    out = {"repr": repr(obj) if dataclasses.is_dataclass(cls) else None}
    for name in ("method", "base", "make", "helper", "cached", "prop"):
        if hasattr(cls, name):
            value = getattr(obj, name)
            out[name] = value() if callable(value) and name != "prop" else value
    if hasattr(cls, "pick"):
        out["pick"] = cls.pick(1)
    if hasattr(cls, "Inner"):
        out["inner"] = cls.Inner().inner()
    if hasattr(cls, "job"):
        coro = obj.job()
        with pytest.raises(StopIteration) as stop:
            coro.send(None)
        out["job"] = stop.value.value
    if dataclasses.is_dataclass(cls):
        out["fields"] = [(f.name, f.type, f.default, f.default_factory, f.init, f.repr,
                          f.compare, f.kw_only, f.hash, f._field_type, dict(f.metadata))
                         for f in dataclasses.fields(cls)]  # fmt: skip
        out["asdict"] = dataclasses.asdict(obj)
        out["replace"] = repr(dataclasses.replace(obj))
        out["params"] = repr(cls.__dataclass_params__)
    return out


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(sources=class_sources())
def test_a_class_comes_back_whole_without_dill(main, sources):
    base, source = sources
    ns = main(base)
    ns = main(source)
    cls = ns["C"]
    enc, back = round_trip(cls)
    assert enc.codec == codec.PICKLE, source
    assert back is not cls and type(back) is type(cls)
    assert back.__bases__ == cls.__bases__ and back.__bases__[0] is ns["Base"]
    for attr in ("__qualname__", "__name__", "__module__", "__doc__", "__slots__",
                 "__annotations__", "__match_args__", "__abstractmethods__"):  # fmt: skip
        assert getattr(back, attr, None) == getattr(cls, attr, None), attr
    assert classes.namespace(back).keys() == classes.namespace(cls).keys()
    assert answers(back) == answers(cls)
    if "cached" in vars(cls):
        assert vars(back)["cached"].attrname == "cached"
    if hasattr(cls, "Inner"):
        assert back.Inner is not cls.Inner and back.Inner.__qualname__ == "C.Inner"


def test_methods_calling_super_share_one_class_cell_filled_after(main):
    ns = main(
        "class Base:\n    def a(self):\n        return 'A'\n    def b(self):\n        return 'B'\n"
        "class C(Base):\n    def a(self):\n        return super().a() + 'c'\n"
        "    def b(self):\n        return super().b() + 'c'\n"
    )
    enc, back = round_trip(ns["C"])
    assert enc.codec == codec.PICKLE and back().a() == "Ac" and back().b() == "Bc"
    cell_a, cell_b = (vars(back)[m].__closure__[0] for m in "ab")
    assert cell_a is cell_b and cell_a.cell_contents is back


def test_a_function_beside_the_class_holding_it_gets_the_new_class(main):
    ns = main("def factory():\n    class Made:\n        pass\n    def make():\n"
              "        return Made()\n    return Made, make\nMade, make = factory()\n")  # fmt: skip
    value = (ns["Made"], ns["make"])
    enc = codec.encode(value, ns, value)
    cls, make = codec.decode(enc.codec, enc.stream, enc.buffers)
    assert enc.codec == codec.PICKLE and cls is not ns["Made"] and type(make()) is cls


def test_a_class_annotated_with_a_type_variable_goes_to_dill(main):
    """A TypeVar pickles as ``__main__.T``, which a restore need not have loaded first."""
    ns = main("import typing\nT = typing.TypeVar('T')\nclass Box:\n    item: T\n")
    enc, back = round_trip(ns["Box"])
    assert enc.codec == codec.DILL and back.__annotations__["item"].__name__ == "T"


def test_a_class_reaching_itself_through_its_data_is_made_first(main):
    """An instance of itself, itself, a subclass: set once the class is made (in C)."""
    ns = main("class Node:\n    pass\nclass Leaf(Node):\n    pass\n"
              "Node.root = Node()\nNode.me = Node\nNode.child = Leaf\n")  # fmt: skip
    value = (ns["Node"], ns["Leaf"])
    enc = codec.encode(value, ns, value)
    node, leaf = codec.decode(enc.codec, enc.stream, enc.buffers)
    assert enc.codec == codec.PICKLE and node is not ns["Node"]
    assert type(node.root) is node and node.me is node and node.child is leaf
    assert leaf.__bases__ == (node,)


def test_an_attribute_overriding_an_abstract_one_is_made_with_the_class(main):
    """Set later, ``abc.ABCMeta`` would have left it abstract: the class made no instance."""
    ns = main("import abc\nclass Named(abc.ABC):\n    @property\n    @abc.abstractmethod\n"
              "    def name(self):\n        ...\nclass Tag:\n    pass\n"
              "class Impl(Named):\n    name = Tag()\n    other = Tag()\n")  # fmt: skip
    enc, back = round_trip(ns["Impl"])
    assert enc.codec == codec.PICKLE and back.__abstractmethods__ == frozenset()
    assert type(back().name) is ns["Tag"] and type(back.other) is ns["Tag"]


def test_a_class_of_a_metaclass_of_its_own_or_registered_goes_to_dill(main):
    ns = main(
        "import abc, enum\nclass Color(enum.Enum):\n    RED = 1\n"
        "class Proto(abc.ABC):\n    pass\nProto.register(int)\n"
    )
    for name in ("Color", "Proto"):
        cls = ns[name]
        assert classes.reduce(cls, lambda c: True) is None
    enc, back = round_trip(ns["Proto"])
    assert enc.codec == codec.DILL and isinstance(3, back)


#: A notebook class whose pickling code counts its runs.
NOISY = ("class Noisy:\n    calls = 0\n    def __reduce__(self):\n"
         "        Noisy.calls += 1\n        return (Noisy, ())\n")  # fmt: skip


def test_notebook_pickling_code_a_class_holds_runs_once(main):
    ns = main(NOISY + "class Holder:\n    default = Noisy()\n    def m(self):\n        return 1\n")
    enc, back = round_trip(ns["Holder"])
    assert enc.codec == codec.DILL and ns["Noisy"].calls == 1 and back().m() == 1
    ns = main("class Bound:\n    push = [Noisy()].append\n")  # held by a built-in method
    ns["Noisy"].calls = 0
    enc, back = round_trip(ns["Bound"])
    assert enc.codec == codec.DILL and ns["Noisy"].calls == 1 and len(back.push.__self__) == 1


def test_dataclass_sentinels_and_fields_are_the_real_ones(main):
    ns = main(
        "import dataclasses\n@dataclasses.dataclass\nclass P:\n    a: int\n"
        "    b: list = dataclasses.field(default_factory=list)\n"
        "    c: dataclasses.InitVar[int] = 0\n"
        "    def __post_init__(self, c):\n        self.a += c\n"
    )
    enc, back = round_trip(ns["P"])
    assert enc.codec == codec.PICKLE
    fields = back.__dataclass_fields__
    assert fields["a"].default is dataclasses.MISSING
    assert fields["b"].default_factory is list
    assert [f.name for f in dataclasses.fields(back)] == ["a", "b"]
    assert back(1, c=2) == back(3) and dataclasses.replace(back(1), c=1).a == 2


MADE_OTHERWISE = {
    "set_name": "class Field:\n    def __set_name__(self, owner, name):\n"
                "        owner.names = [*getattr(owner, 'names', []), name]\n"
                "class C:\n    a = Field()\n",
    "cached twice": "import functools\nclass C:\n    @functools.cached_property\n"
                    "    def total(self):\n        return 1\nC.alias = C.__dict__['total']\n",
    "eq later": "class C:\n    pass\nC.__eq__ = lambda s, o: True\n",
    "abstract later": "import abc\nclass C(abc.ABC):\n    pass\n"
                      "C.m = abc.abstractmethod(lambda self: 1)\n",
    "getitem later": "class C:\n    pass\nC.__class_getitem__ = lambda cls, k: ('gi', k)\n",
    "init_subclass later": "class C:\n    pass\nC.__init_subclass__ = lambda cls: None\n",
    "new later": "class C:\n    pass\nC.__new__ = lambda cls: object.__new__(cls)\n",
    "abstract on a plain class": "class C:\n    pass\nC.__abstractmethods__ = frozenset({'m'})\n",
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MADE_OTHERWISE))
def test_a_class_its_namespace_would_make_otherwise_is_not_made_again(main, case):
    """The namespace is what the class statement made, not what it was given: a
    __set_name__ run twice, attributes set afterwards that type() reads otherwise: not
    this module's (helper-54 F1-F4)."""
    cls = main(MADE_OTHERWISE[case])["C"]
    assert classes.reduce(cls, lambda c: True) is None


INIT_SUBCLASS = (
    "class Base:\n    registry = []\n    def __init_subclass__(cls, flag=False, **kw):\n"
    "        super().__init_subclass__(**kw)\n        Base.registry.append(cls.__name__)\n"
    "        cls.flag, cls.depth = flag, getattr(cls, 'depth', 0) + 1\n"
    "class Mid(Base, flag=True):\n    def who(self):\n        return ['mid']\n"
    "class C(Mid):\n    size = 2\n    def who(self):\n        return ['c', *super().who()]\n"
)


def test_a_class_whose_bases_init_subclass_ran_is_made_without_running_it_again(main):
    """A base's __init_subclass__ ran when the notebook made the class: what it did is in
    the class (``flag``, ``depth``) or in what it changed (``Base.registry``, saved apart).
    Made again with its keywords lost (dill), it ran twice and read notebook names not yet
    restored (a NameError: the restore skipped the class, its base and its instances)."""
    ns = main(INIT_SUBCLASS)
    for name, flag, depth in (("Mid", True, 1), ("C", False, 2)):
        enc, back = round_trip(ns[name])
        assert enc.codec == codec.PICKLE and {b.__name__ for b in ns[name].__bases__} <= enc.refs
        assert ns["Base"].registry == ["Mid", "C"]  # not run again
        assert (back.flag, back.depth) == (flag, depth) and back.__bases__ == ns[name].__bases__
        assert back().who() == ns[name]().who() and issubclass(back, ns["Base"])
    later = type("Later", (back,), {})  # a subclass of the one made again: runs as ever
    assert later.depth == 3 and ns["Base"].registry[-1] == "Later"


def test_a_class_whose_data_reaches_itself_is_the_c_picklers(main):
    """Data attributes are set once the class is made: a class listed in its own table
    meets itself made (it went to dill)."""
    ns = main("class C:\n    table = {}\n    def m(self):\n        return 1\nC.table['me'] = C\n"
              "C.chain = [C, {'again': C}]\n")  # fmt: skip
    enc, back = round_trip(ns["C"])
    assert enc.codec == codec.PICKLE and back.table["me"] is back and back.chain[1]["again"] is back
    assert back().m() == 1 and "table" in vars(back) and back is not ns["C"]


@pytest.mark.parametrize("state", [
    (), ((), []), ((), {"x": 1}), ((), {1: []}), ((), {"__init__": []}), ((1,), {}),
    ((), {}, 1), ((), {}, ((int, (), {}),)), ((), {}, ((type("D", (), {}), (), {"y": 1}),)),
])  # fmt: skip
def test_damaged_class_data_is_refused(state):
    with pytest.raises(TypeError, match="damaged"):
        classes.fill_later(type("C", (), {}), state)


def test_a_class_of_a_librarys_base_with_init_subclass_stays_dills(main):
    """helper-56: a library's ``__init_subclass__`` keeps what it did in the library (a
    registry of locales, of plugins), empty in a new kernel: it runs again at restore."""
    ns = main("Lib = type('Lib', (), {'__module__': 'somelib',\n"
              "                       '__init_subclass__': lambda cls, **kw: None})\n"
              "class C(Lib):\n    pass\n"
              "class Mine(Lib):\n    def __init_subclass__(cls, **kw):\n"
              "        super().__init_subclass__(**kw)\nclass D(Mine):\n    pass\n")  # fmt: skip
    assert classes.reduce(ns["C"], lambda c: True) is None
    assert classes.reduce(ns["D"], lambda c: True) is None  # (Lib's runs for D too)


def test_a_class_whose_bases_layout_differs_stays_dills(main):
    """Made on a stand-in, then given its bases: only bases with a plain layout can be."""
    ns = main("class Base(dict):\n    def __init_subclass__(cls):\n        cls.seen = 1\n"
              "class C(Base):\n    pass\nclass S:\n    __slots__ = ('a',)\n"
              "    def __init_subclass__(cls):\n        cls.seen = 1\n"
              "class D(S):\n    pass\n")  # fmt: skip
    assert classes.reduce(ns["C"], lambda c: True) is None
    assert classes.reduce(ns["D"], lambda c: True) is None


@pytest.mark.parametrize("bases, ns", [((dict,), {}), ((1,), {}), ((object,), [("x", 1)])])
def test_a_damaged_quiet_class_payload_is_refused(bases, ns):
    with pytest.raises(TypeError, match="damaged"):
        classes.make_quietly("C", bases, ns)


def test_slots_private_or_aliased_are_made_again_as_they_were(main):
    ns = main("class C:\n    __slots__ = ('__p', 'x', '__weakref__')\n"
              "    def get(self):\n        return self.__p\n"
              "C.alias = C.__dict__['x']\n")  # fmt: skip
    cls = ns["C"]
    assert classes.reduce(cls, lambda c: True) is not None  # (the alias: its own reduce)
    assert "alias" in classes.namespace(cls) and "x" not in classes.namespace(cls)


def test_an_old_instance_of_a_class_redefined_on_itself_keeps_its_own_methods(main):
    """``class A(A)`` (a notebook idiom): the old ``A.hi`` is found on the new ``A`` by
    inheritance, yet is no part of it: saved by value with the old ``A`` (helper-54 F5)."""
    ns = main("class Base:\n    def hi(self):\n        return 'base'\n"
              "class A(Base):\n    def hi(self):\n        return 'a/' + super().hi()\n"
              "a = A()\nclass A(A):\n    def extra(self):\n        return 1\n")  # fmt: skip
    enc = codec.encode(ns["a"], ns, (ns["a"],))
    back = codec.decode(enc.codec, enc.stream, enc.buffers, resolve=ns.__getitem__)
    assert back.hi() == "a/base" and not hasattr(back, "extra") and "A" not in enc.refs


def test_items_of_a_notebook_container_subclass_are_checked_too(main):
    """A C pass failing after a notebook __reduce__ ran, then dill, runs it twice: the
    items of a list or dict subclass are looked at first (helper-54 F6)."""
    ns = main(
        NOISY + "import threading\n"
        "class Bag(list):\n    pass\nclass Map(dict):\n    pass\n"
        "class Holder:\n    items = Bag([Noisy(), threading.Lock()])\n"
        "class Keyed:\n    items = Map(a=Noisy(), b=threading.Lock())\n"
    )
    for name in ("Holder", "Keyed"):
        ns["Noisy"].calls = 0
        enc, back = round_trip(ns[name])
        assert enc.codec == codec.DILL and ns["Noisy"].calls == 1, name
        assert len(back.items) == 2


@pytest.mark.parametrize("meta, ns", [(dict, {}), (type, [("x", 1)])])
def test_a_damaged_class_payload_is_refused(meta, ns):
    with pytest.raises(TypeError, match="damaged"):
        classes.make(meta, "C", (), ns)


def test_parts_pickle_alone_as_they_were():
    prop = property(len, None, None, "doc")
    back = pickle.loads(_dump(prop))
    assert type(back) is property and back.fget is len and back.__doc__ == "doc"
    assert pickle.loads(_dump(dataclasses.MISSING)) is dataclasses.MISSING
    field = dataclasses.field(default=3, metadata={"k": 1})
    back = pickle.loads(_dump(field))
    assert back.default == 3 and back.metadata == {"k": 1}
    assert isinstance(back.metadata, types.MappingProxyType)
    cached = functools.cached_property(len)
    cached.__set_name__(object, "size")
    assert pickle.loads(_dump(cached)).attrname == "size"  # (in a class, named by it too)
    assert classes.reduce_part(object()) is NotImplemented
    assert classes.parts(abc.ABC) is None


class _PartsPickler(pickle.Pickler):
    def reducer_override(self, obj):
        return classes.reduce_part(obj)


def _dump(value) -> bytes:
    """``value`` pickled with :func:`classes.reduce_part` as the pickler's override."""
    out = io.BytesIO()
    _PartsPickler(out, protocol=5).dump(value)
    return out.getvalue()


def test_a_static_method_held_elsewhere_stays_that_function(main):
    """``[H.helper]`` beside ``H``: the function goes by name, as getattr finds it on ``H``
    (helper-55 C1: the staticmethod in ``vars(H)`` is not the function)."""
    ns = main("class H:\n    @staticmethod\n    def helper(x):\n        return x\n"
              "hs = [H.helper]\n")  # fmt: skip
    enc = codec.encode(ns["hs"], ns, (ns["hs"],))
    back = codec.decode(enc.codec, enc.stream, enc.buffers, resolve=ns.__getitem__)
    assert enc.refs == {"H"} and back[0] is ns["H"].helper


def test_a_notebook_containers_own_iteration_never_runs_in_a_save(main):
    """simple() reads a subclass's items as its base type does (helper-55 C3), and so does
    the pickle (containers.iterates_own_way): the notebook's ``__iter__`` is not run at all."""
    ns = main("class Bag(list):\n    iters = 0\n    def __iter__(self):\n"
              "        Bag.iters += 1\n        return super().__iter__()\n"
              "class Holder:\n    items = Bag([1, 2])\n")  # fmt: skip
    enc, back = round_trip(ns["Holder"])
    assert enc.codec == codec.PICKLE and ns["Bag"].iters == 0 and back.items == [1, 2]


def test_slots_of_a_class_named_with_underscores_only_are_not_mangled(main):
    ns = main("class ___:\n    __slots__ = ('__p',)\n")
    assert classes.reduce(ns["___"], lambda c: True) is not None


def test_a_class_dill_saves_keeps_its_whole_namespace(main):
    """dill dropped a static or class method's own attributes (helper-111 F3), and an
    attribute that is its base's very object (F5: the class then inherited it, and a later
    change to the base showed through)."""
    ns = main("class Meta(type):\n    pass\nclass Shape(metaclass=Meta):\n"
              "    def describe(self):\n        return 'shape'\n"
              "    @staticmethod\n    def s():\n        return 1\n"
              "    @classmethod\n    def c(cls):\n        return 2\n"
              "class Tri(Shape):\n    describe = Shape.describe\n    s = vars(Shape)['s']\n"
              "vars(Shape)['s'].note = 3\nvars(Shape)['c'].unit = 'm'\n")  # fmt: skip
    enc, shape = round_trip(ns["Shape"])
    assert enc.codec == codec.DILL and vars(shape)["s"].note == 3 and vars(shape)["c"].unit == "m"
    assert shape.s() == 1 and shape.c() == 2
    enc, tri = round_trip(ns["Tri"])
    assert enc.codec == codec.DILL and vars(tri)["describe"] is ns["Shape"].describe
    assert type(vars(tri)["s"]) is staticmethod and vars(tri)["s"].note == 3


def test_slots_set_after_the_statement_make_no_slots(main):
    """helper-110: ``__slots__`` set on a class after its statement is an attribute; in the
    namespace type() is called with, its instances came back taking no attribute."""
    ns = main("class Base:\n    pass\nBase.__slots__ = ()\nclass Late:\n    pass\n"
              "Late.__slots__ = ('a',)\nclass Real:\n    __slots__ = ('a',)\n")  # fmt: skip
    for name in ("Base", "Late", "Real"):
        enc, back = round_trip(ns[name])
        assert enc.codec == codec.PICKLE and back.__slots__ == ns[name].__slots__
        assert back.__dictoffset__ == ns[name].__dictoffset__, name
        obj = back()
        if name == "Real":
            obj.a = 1
        else:
            obj.x = 1


def test_damaged_class_data_changes_no_class():
    """helper-112 F5: data was set before the cells were checked, a moved class could be a
    library's, and a payload's class that is none raised another error."""
    import json

    class B:
        pass

    with pytest.raises(TypeError, match="damaged"):
        classes.fill_later(B, ((1,), {"reg": [1]}))
    assert "reg" not in vars(B)
    before = json.JSONEncoder.default
    with pytest.raises(TypeError, match="damaged"):
        classes.fill_later(B, ((), {}, ((json.JSONEncoder, (), {"default": len}),)))
    assert json.JSONEncoder.default is before
    with pytest.raises(TypeError, match="damaged"):
        classes.fill_later(5, ((), {}))
