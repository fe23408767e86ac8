"""Whose work a run is: the rule that keeps notebooks sharing a journal apart (no kernel)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_nb.owner import same_notebook

pytestmark = pytest.mark.unit

names = st.text(st.characters(codec="ascii", exclude_characters="/\x00"), min_size=1)


@given(names)
def test_a_notebook_is_its_own(name):
    assert same_notebook(f"/nb/{name}", f"/nb/{name}")
    assert same_notebook(f"/nb/./{name}", f"/nb/{name}")


def test_kernels_that_did_not_know_their_notebook_are_not_a_notebooks():
    assert same_notebook(None, None)  # a journal of its own per session
    assert not same_notebook(None, "/nb/x.ipynb")
    assert not same_notebook("/nb/x.ipynb", None)


def test_another_notebook_is_not_ours(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.ipynb").touch()
    assert not same_notebook(str(tmp_path / "a" / "x.ipynb"), str(tmp_path / "b" / "x.ipynb"))
    assert not same_notebook(str(tmp_path / "x.py"), str(tmp_path / "x.ipynb"))


def test_a_moved_or_imported_notebook_is_the_same_by_name(tmp_path):
    gone = "/home/someone-else/work/x.ipynb"
    assert same_notebook(gone, str(tmp_path / "x.ipynb"))
    assert not same_notebook(gone, str(tmp_path / "y.ipynb"))


def test_symlinks_are_resolved(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert same_notebook(str(tmp_path / "real" / "x.ipynb"), str(tmp_path / "link" / "x.ipynb"))
