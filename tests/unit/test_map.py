"""``dnb.map`` on thread pools in a plain process (a script's Runtime, journal in tmp_path)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import durable_nb as dnb
from durable_nb import runtime
from durable_nb.runtime import Runtime

pytestmark = pytest.mark.unit


@pytest.fixture
def rt(tmp_path, monkeypatch):
    monkeypatch.setenv("DURABLE_NB_DIR", str(tmp_path))
    rt = Runtime(str(tmp_path / "script.py"))
    runtime.install(rt)
    rt.begin_cell(None, "the cell")
    yield rt
    rt.end_cell("ok", None)
    runtime.install(None)
    rt.close()


@pytest.mark.parametrize("workers", [1, 3])
def test_a_callers_pool_is_used_without_reading_its_size(rt, workers):
    threads = set()

    @dnb.step(retries=0)
    def square(x):
        threads.add(threading.current_thread().name)
        return x * x

    with ThreadPoolExecutor(workers, thread_name_prefix="mine") as pool:
        out = dnb.map(square, range(200), executor=pool, progress=False)
    assert out == [x * x for x in range(200)]
    assert 1 <= len(threads) <= workers and all(t.startswith("mine") for t in threads)


def test_a_timed_out_item_is_not_retried_beside_itself(rt, tmp_path):
    effects, release = tmp_path / "effects", threading.Event()

    @dnb.step(retries=3, initial=0, timeout=0.05)
    def stuck(x):
        with Path(effects).open("a") as f:
            f.write(f"{x}\n")
        if x == "slow":
            release.wait(60)
        return x

    try:
        out = dnb.map(stuck, ["slow", "quick"], errors="collect", progress=False)
    finally:
        release.set()
    assert out[1] == "quick"
    [(item, error)] = out.errors
    assert item == "slow" and isinstance(error, dnb.StepTimeout)
    assert sorted(effects.read_text().split()) == ["quick", "slow"]  # "slow" ran once
