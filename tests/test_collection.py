"""The suite runs on two workers (pytest -n 2): each must collect the same test ids."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


def _ids(seed: str) -> list[str]:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "no:xdist", str(ROOT / "tests")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return sorted(line for line in proc.stdout.splitlines() if "::" in line)


def _whole_suite(config: pytest.Config) -> bool:
    """Whether this session collected every test of tests/ (then its ids are one side)."""
    given = {(Path(config.invocation_params.dir) / a).resolve() for a in config.args}
    ignored = config.getoption("ignore") or config.getoption("ignore_glob")
    return given <= {ROOT, ROOT / "tests"} and not ignored


def test_test_ids_do_not_depend_on_the_hash_seed(request, collected_ids):
    # A set's or a random value's repr in a test id differs between workers, and xdist
    # then stops before running anything ("Different tests were collected"). The ids this
    # session collected (under its own hash seed) are one side when they are all of them.
    if _whole_suite(request.config):
        seed = "2" if os.environ.get("PYTHONHASHSEED") != "2" else "1"
        first, second = sorted(collected_ids), _ids(seed)
    else:
        first, second = _ids("1"), _ids("2")
    assert len(first) > 100
    assert first == second, sorted(set(first) ^ set(second))[:10]
