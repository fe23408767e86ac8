"""The documents a user or contributor gets with the repository: links, commands, license."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```$", text, re.S | re.M)


def test_the_readme_starts_with_the_install_and_the_test_command():
    # .ci/run runs the second block on a fresh clone: it must stay the test command.
    blocks = bash_blocks((ROOT / "README.md").read_text())
    assert blocks[:2] == [
        "python3 -m venv .venv && .venv/bin/pip install -e . && "
        ".venv/bin/durable-nb run notebooks/01_flaky_service.ipynb\n",
        "sh tests/setup.sh && .venv/bin/pytest -n 2\n",
    ]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_inside_the_repository_and_resolve(doc):
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.partition("#")[0]).resolve()
        assert ROOT in path.parents, f"{doc.name} links outside the repository: {target}"
        assert path.exists(), f"{doc.name} links to a missing file: {target}"


def test_the_readme_links_the_design_page():
    assert "(docs/design.md)" in (ROOT / "README.md").read_text()


def test_the_license_file_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-3-Clause"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "Copyright (c) 2026, the durable_nb developers" in text
