"""Saving a snapshot is invisible to the notebook (issue 13): it does not print, warn,
mutate, or call user code more than pickling once requires. Real kernels.
"""

from __future__ import annotations

import uuid

from test_snapshot import BALLAST, kill_and_restore


def cell(k, code: str):
    return k.ok(code, cell_id=f"cell-{uuid.uuid4().hex[:8]}")


def test_an_enum_class_gives_no_pickling_warning_and_comes_back(start_kernel):
    k = start_kernel()
    cell(k, BALLAST)
    out = [cell(k, "from enum import Enum\nclass Color(Enum):\n    R = 1\n    G = 2")]
    out += [cell(k, "c = Color.R"), cell(k, "y = 1"), cell(k, "c = Color.G\nColor")]
    for result in out:
        assert "Warning" not in result.stderr and "durable_nb" not in result.stderr, str(result)
    k2, report = kill_and_restore(start_kernel, k)
    assert "skipped" not in report, report
    assert k2.value("c is Color.G, [m.name for m in Color]") == "(True, ['R', 'G'])"


def test_a_library_warning_shows_as_often_as_in_the_plain_kernel(start_kernel, workdir):
    (workdir / "wlib.py").write_text("import warnings\ndef w():\n    warnings.warn('careful')\n")
    counts = {}
    for kernel in ("python3", "python3-durable"):
        k = start_kernel(kernel_name=kernel)
        cell(k, BALLAST)
        cell(k, "import wlib\ndef g():\n    return wlib.w()\n")
        counts[kernel] = [cell(k, "g()\nh = lambda: g()").stderr.count("careful") for _ in range(4)]
    assert counts["python3-durable"] == counts["python3"] and counts["python3"][1:] == [0, 0, 0]


def test_reduce_runs_once_per_save_and_not_for_untouched_variables(start_kernel):
    k = start_kernel()
    cell(k, BALLAST)
    cell(k, "class Noisy:\n    def __reduce__(self):\n        print('called')\n"
            "        return (Noisy, ())")  # fmt: skip
    counts = [cell(k, code).stdout.count("called") for code in (
        "n = Noisy()", "y = 1", "m = [n]", "pass", "z = 2")]  # fmt: skip
    assert counts == [1, 0, 1, 0, 0], counts


def test_a_mock_grows_no_attribute_when_saved(start_kernel):
    k = start_kernel()
    cell(k, BALLAST)
    cell(k, "from unittest.mock import MagicMock\nmk = MagicMock()\nbefore = dir(mk)")
    cell(k, "holder = [mk]")
    cell(k, "y = 1")
    assert k.value("dir(mk) == before, mk.mock_calls") == "(True, [])"
