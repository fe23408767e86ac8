"""``durable-nb run -p NAME VALUE``: the injected parameters cell, as papermill makes it."""

from __future__ import annotations

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from durable_nb.cli._exit import USAGE
from durable_nb.cli.run import INJECTED, _inject
from durable_nb.errors import CommandError

pytestmark = pytest.mark.unit


def notebook(tagged: bool = True):
    params = new_code_cell("n = 1\nname = 'a'")
    if tagged:
        params.metadata["tags"] = ["parameters"]
    return new_notebook(cells=[new_markdown_cell("# t"), params, new_code_cell("print(n)")])


def test_values_are_literals_when_they_parse_else_strings():
    nb = notebook()
    line = _inject(nb, [["n", "3"], ["name", "b"], ["xs", "[1, 2]"], ["s", "'q'"]])
    assert line == "n = 3; name = 'b'; xs = [1, 2]; s = 'q'"
    cell = nb.cells[2]
    assert cell.id == INJECTED and cell.metadata["tags"] == [INJECTED]
    assert cell.source == "# Parameters\nn = 3\nname = 'b'\nxs = [1, 2]\ns = 'q'"


def test_the_cell_goes_after_the_parameters_cell_else_first():
    nb = notebook(tagged=False)
    _inject(nb, [["n", "3"]])
    assert nb.cells[0].id == INJECTED and len(nb.cells) == 4


def test_a_second_injection_replaces_the_first():
    nb = notebook()
    _inject(nb, [["n", "3"]])
    _inject(nb, [["n", "4"]])
    injected = [c for c in nb.cells if INJECTED in c.metadata.get("tags", [])]
    assert [c.source for c in injected] == ["# Parameters\nn = 4"]


def test_no_parameters_leave_the_notebook_alone():
    nb = notebook()
    assert _inject(nb, []) == ""
    assert len(nb.cells) == 3


@pytest.mark.parametrize("name", ["1n", "a-b", "x; import os", ""])
def test_a_name_must_be_an_identifier(name):
    with pytest.raises(CommandError) as stop:
        _inject(notebook(), [[name, "1"]])
    assert stop.value.code == USAGE
    assert "must be a Python identifier" in str(stop.value)
