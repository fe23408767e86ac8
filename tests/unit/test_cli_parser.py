"""``durable-nb`` arguments, dispatch and exit codes, without a kernel or a journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from durable_nb.cli import inspect, main, run, share
from durable_nb.cli._exit import HELD, USAGE
from durable_nb.cli.parser import build_parser

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("argv", "func"),
    [
        (["run", "a.ipynb"], run.cmd_run),
        (["replay", "a.ipynb"], run.cmd_replay),
        (["ls"], inspect.cmd_ls),
        (["show", "a.ipynb"], inspect.cmd_show),
        (["export", "a.ipynb", "-o", "a.zip"], share.cmd_export),
        (["import", "a.zip"], share.cmd_import),
        (["gc", "a.ipynb"], share.cmd_gc),
        (["trust", "a.zip"], share.cmd_trust),
    ],
)
def test_each_command_dispatches_to_its_function(argv, func):
    assert build_parser().parse_args(argv).func is func


def test_run_options():
    args = build_parser().parse_args(
        ["run", "a.ipynb", "-p", "n", "3", "-p", "name", "x", "--fresh", "--timeout", "5"]
    )
    assert args.notebook == Path("a.ipynb")
    assert args.parameter == [["n", "3"], ["name", "x"]]
    assert args.fresh and args.timeout == 5.0
    assert args.kernel == run.KERNEL and args.output is None


def test_defaults():
    assert build_parser().parse_args(["ls"]).folder == Path(".")
    assert build_parser().parse_args(["import", "a.zip"]).dir == Path(".")
    assert build_parser().parse_args(["replay", "a.ipynb"]).parameter == []


@pytest.mark.parametrize(
    "argv", [[], ["frobnicate"], ["export", "a.ipynb"], ["run"], ["run", "a", "-p", "n"]]
)
def test_bad_usage_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == USAGE
    assert "usage: durable-nb" in capsys.readouterr().err


def test_help_lists_commands_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal
    for command in ("run", "replay", "ls", "show", "export", "import", "gc", "trust"):
        assert command in out
    assert "3 the journal is held by a live kernel" in out


def test_a_stopped_command_prints_one_line_and_its_code(tmp_path, capsys):
    assert main(["ls", str(tmp_path / "missing")]) == USAGE
    assert capsys.readouterr().err == f"durable-nb: no folder at {tmp_path / 'missing'}\n"
    assert main(["show", str(tmp_path / "a.ipynb")]) == USAGE
    assert "no journal at" in capsys.readouterr().err


def test_ls_of_a_folder_without_journals(tmp_path, capsys):
    assert main(["ls", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"no journals under {tmp_path}\n"


def test_exit_codes_are_distinct():
    from durable_nb.cli import _exit

    assert (_exit.OK, _exit.FAILED, _exit.USAGE, HELD) == (0, 1, 2, 3)
