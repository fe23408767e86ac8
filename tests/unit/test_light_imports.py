"""Importing durable_nb is light: heavy libraries load when first needed.

A kernel with the extension must start about as fast as one without, and
``durable-nb --help`` must answer at once. A fresh interpreter tells what an import
really pulls in (this process has imported everything already).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("duckdb", "pandas", "numpy", "dill", "ipywidgets", "nbclient", "nbformat", "tqdm",
         "distributed", "jupyter_client")  # fmt: skip


def loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_importing_the_package_and_loading_the_extension_module_is_light():
    assert loaded_after("import durable_nb, durable_nb.extension") == []


def test_the_command_line_module_imports_nothing_heavy():
    assert loaded_after("import durable_nb.cli") == []


def test_the_command_line_help_loads_no_kernel_side():
    # The package root imports its public names on first use (PEP 562), so ``durable-nb
    # --help`` loads neither IPython nor asyncio nor the steps and the journal.
    probe = (
        "import sys\nfrom durable_nb.cli import main\ntry:\n    main(['--help'])\n"
        "except SystemExit:\n    pass\n"
        "print(' '.join(m for m in ('IPython', 'asyncio', 'traitlets', 'durable_nb.steps', "
        "'durable_nb.store', 'durable_nb.extension') if m in sys.modules), file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stderr.split() == []


def test_reading_a_notebook_for_a_run_compiles_no_iri_grammars(tmp_path):
    # jsonschema (under nbformat) would import rfc3987_syntax, which compiles ~40 Lark
    # grammars at import (~3.5 CPU-s of every `durable-nb run`); validation needs none.
    nb = tmp_path / "a.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    probe = (
        "import sys\nfrom pathlib import Path\nfrom durable_nb.cli.run import _load_notebook\n"
        f"path, nb = _load_notebook(Path({str(nb)!r}), 'python3')\n"
        "print(nb.nbformat, ' '.join(m for m in ('jsonschema', 'lark') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["4", "jsonschema"], out.stdout + out.stderr


def test_a_journal_uses_duckdbs_engine_module_without_its_python_api(tmp_path):
    # DuckDB 2 ships its engine apart (``_duckdb``): the ``duckdb`` package on top of it
    # costs a kernel ~0.07 s more to start and the journal uses none of it.
    probe = (
        "import sys\nfrom durable_nb.store import Journal\n"
        f"j = Journal.open({str(tmp_path / 'nb.duckdb')!r})\n"
        "j.runs(); j.close()\n"
        "print(' '.join(m for m in ('_duckdb', 'duckdb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    if "_duckdb" not in out.stdout:
        pytest.skip("this DuckDB has no engine module of its own (before 2.0)")
    assert out.stdout.split() == ["_duckdb"], out.stdout + out.stderr
