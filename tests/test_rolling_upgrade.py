"""notebooks/03_rolling_upgrade.ipynb headless, and the local cluster it upgrades.

What counts is the cluster's own request log (``requests.jsonl``, written by the node
processes): a second run must send no request at all, and a run killed mid-upgrade
then resumed must upgrade every node exactly once.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import nbformat
import psutil
import pytest
from cluster import Cluster, ServiceError  # conftest puts notebooks/ on sys.path

from durable_nb.answers import ANSWERS_ENV

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK = NOTEBOOKS / "03_rolling_upgrade.ipynb"
_BESIDE = Path(sys.executable).with_name("durable-nb")
DURABLE_NB = _BESIDE if _BESIDE.exists() else ROOT / ".venv" / "bin" / "durable-nb"
RUN_TIMEOUT = 240  # seconds for one run of the notebook
WAIT = 120  # seconds to wait for something the notebook does
NODES = 3  # the notebook's faults are on node-2 (unhealthy twice) and node-3 (hangs once)


@pytest.fixture
def cluster_dir(tmp_path: Path):
    """The cluster's folder; whatever node processes are left are stopped afterwards."""
    path = tmp_path / "cluster"
    yield path
    if (path / "cluster.json").exists():
        Cluster.attach(path).stop()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "DURABLE_NB"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NOTEBOOKS), env.get("PYTHONPATH")]))
    return env


def _command(nb: Path, cluster_dir: Path) -> list[str]:
    return [str(DURABLE_NB), "run", str(nb), "-p", "CLUSTER_DIR", str(cluster_dir),
            "-p", "NODES", str(NODES), "--answer", "upgrade=yes"]  # fmt: skip


def _run(nb: Path, cluster_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(_command(nb, cluster_dir), env=_env(), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)  # fmt: skip


def _show(proc) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def _notebook(tmp_path: Path) -> Path:
    """A copy of 03 in its own folder, so that its journal is the test's own."""
    nb = tmp_path / NOTEBOOK.name
    shutil.copy(NOTEBOOK, nb)
    return nb


def _upgrades(cluster: Cluster) -> dict[str, Counter]:
    """Node -> Counter of the outcomes of the upgrade requests it answered."""
    seen: dict[str, Counter] = {node: Counter() for node in cluster.nodes}
    for r in cluster.log():
        if r["endpoint"] == "upgrade":
            seen[r["node"]][r["outcome"]] += 1
    return seen


def _until(condition, what: str, proc: subprocess.Popen | None = None):
    """Wait for ``condition()`` to be truthy (a sync point, not a timing check)."""
    deadline = time.monotonic() + WAIT
    while not (value := condition()):
        assert proc is None or proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {WAIT} s"
        time.sleep(0.02)
    return value


# -- the cluster itself -----------------------------------------------------------------


def test_cluster_honours_keys_injects_faults_and_logs_every_request(tmp_path):
    faults = dict(upgrade_seconds=0.0, hang_seconds=3.0, unhealthy_after_upgrade={"node-2": 2},
                  slow_upgrades={"node-3": 1})  # fmt: skip
    with Cluster(tmp_path / "c", 3, **faults) as cluster:
        with pytest.raises(ServiceError) as refused:  # not drained
            cluster.post("node-1", "upgrade", {"version": "2.0"}, key="k1")
        assert refused.value.status == 409 and "drain it first" in str(refused.value)
        cluster.post("node-1", "drain", key="d1")
        first = cluster.post("node-1", "upgrade", {"version": "2.0"}, key="k1")
        assert first == {"node": "node-1", "version": "2.0", "previous": "1.0", "upgrade": 1}
        assert cluster.post("node-1", "upgrade", {"version": "3.0"}, key="k1") == first
        assert cluster.post("node-1", "upgrade", {"version": "2.0"})["upgrade"] == 2  # no key

        cluster.post("node-2", "drain")
        cluster.post("node-2", "upgrade", {"version": "2.0"})
        for _ in range(2):
            with pytest.raises(ServiceError) as sick:
                cluster.get("node-2", "health")
            assert sick.value.status == 503
        assert cluster.get("node-2", "health")["status"] == "ok"

        cluster.post("node-3", "drain")
        with pytest.raises(TimeoutError):  # the node goes on upgrading
            cluster.post("node-3", "upgrade", {"version": "2.0"}, key="k3", timeout=0.1)
        _until(lambda: cluster.info("node-3")["running_keys"] == ["k3"], "the hung upgrade")
        with pytest.raises(ServiceError) as running:
            cluster.post("node-3", "upgrade", {"version": "2.0"}, key="k3")
        assert running.value.status == 409
        _until(lambda: not cluster.info("node-3")["running_keys"], "end of the hang")
        assert cluster.post("node-3", "upgrade", {"version": "2.0"}, key="k3")["upgrade"] == 1

        # Another Cluster object on the folder attaches to the same processes.
        assert Cluster.attach(cluster.directory).ports == cluster.ports
        assert Cluster(cluster.directory, 3).start().ports == cluster.ports
        pids = [cluster.info(n)["pid"] for n in cluster.nodes]

    assert not any(psutil.pid_exists(pid) for pid in pids)
    assert cluster.upgrades() == {"node-1": 2, "node-2": 1, "node-3": 1}
    upgrades = _upgrades(cluster)
    assert upgrades["node-1"] == {"refused": 1, "upgraded": 2, "repeat": 1}
    assert upgrades["node-3"] == {"upgraded": 1, "in progress": 1, "repeat": 1}
    assert [r["outcome"] for r in cluster.log() if r["endpoint"] == "health"] == [
        "unhealthy", "unhealthy", "ok"]  # fmt: skip

    # Stopped, the state stays: started again, the nodes remember versions and keys.
    with Cluster(cluster.directory, 3) as again:
        assert again.get("node-1", "version")["version"] == "2.0"
        assert again.post("node-1", "upgrade", {"version": "9"}, key="k1") == first
    assert again.upgrades() == cluster.upgrades()


def test_seeded_503s_repeat_with_the_seed(tmp_path):
    def draws(folder: str) -> list[int]:
        with Cluster(tmp_path / folder, ["a"], seed=7, flaky={"version": 0.5}) as cluster:
            out = []
            for _ in range(20):
                try:
                    cluster.get("a", "version")
                    out.append(200)
                except ServiceError as exc:
                    out.append(exc.status)
            return out

    first = draws("one")
    assert first == draws("two") and set(first) == {200, 503}


# -- the notebook -----------------------------------------------------------------------


def test_notebook_runs_headless_then_replays_everything(tmp_path, cluster_dir):
    nb = _notebook(tmp_path)
    first = _run(nb, cluster_dir)
    assert first.returncode == 0, _show(first)
    cluster = Cluster.attach(cluster_dir)
    log = cluster.log()
    assert cluster.upgrades() == dict.fromkeys(cluster.nodes, 1), _upgrades(cluster)
    upgrades = _upgrades(cluster)
    hung = upgrades["node-3"]
    assert hung["in progress"] + hung["repeat"] >= 1, upgrades  # its hung upgrade was retried
    assert sum(c["503"] for c in upgrades.values()) >= 1, upgrades  # and injected 503s
    assert {r["version"] for r in cluster.status()} == {"2.0"}

    second = _run(nb, cluster_dir)
    assert second.returncode == 0, _show(second)
    assert "9 steps replayed" in second.stdout, _show(second)  # 3 nodes x 3 steps
    assert "the answer to 'Drain and upgrade 3 nodes" in second.stderr + second.stdout
    assert cluster.log() == log  # not one request reached a node


def test_killed_mid_upgrade_resumes_and_no_node_is_upgraded_twice(tmp_path, cluster_dir):
    nb = _notebook(tmp_path)
    target = random.choice([f"node-{i}" for i in range(1, NODES + 1)])
    cli = subprocess.Popen(_command(nb, cluster_dir), env=_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        kernel = _until(lambda: psutil.Process(cli.pid).children(), "kernel", cli)[0]
        _until(lambda: (cluster_dir / "run.json").exists(), "cluster", cli)
        cluster = Cluster.attach(cluster_dir)
        # Kill while the target's upgrade runs on the node: the step has not returned,
        # so the journal cannot hold it; the node finishes the upgrade anyway.
        _until(lambda: cluster.info(target)["running_keys"], f"upgrade of {target}", cli)
        os.kill(kernel.pid, signal.SIGKILL)
        out, err = cli.communicate(timeout=RUN_TIMEOUT)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 1 and "DeadKernelError" in err, f"{target}\n{out}\n{err}"
    # The node finishes the upgrade the dead kernel asked for, and logs it.
    _until(lambda: _upgrades(cluster)[target]["upgraded"], f"end of {target}'s upgrade")
    done = [n for n, c in _upgrades(cluster).items() if c["upgraded"]]
    assert done == cluster.nodes[: cluster.nodes.index(target) + 1], (target, done)

    second = _run(nb, cluster_dir)
    assert second.returncode == 0, f"{target}\n{_show(second)}"
    upgrades = _upgrades(cluster)
    assert cluster.upgrades() == dict.fromkeys(cluster.nodes, 1), (target, upgrades)
    # The in-flight upgrade was sent again after the kill, with the same key, and
    # answered from it.
    assert upgrades[target]["repeat"] >= 1, (target, upgrades)
    keys = {r["key"] for r in cluster.log() if r["node"] == target and r["endpoint"] == "upgrade"}
    assert len(keys) == 1, (target, keys)
    assert {r["version"] for r in cluster.status()} == {"2.0"}
    assert not any(r["drained"] for r in cluster.status())


def test_kernel_killed_mid_upgrade_then_resume_cell_finishes_the_upgrade(
    start_kernel, kernel_env, cluster_dir
):
    """The tutorial's path in a frontend: cells run one by one, a kill, ``%durable resume``."""
    cells = [c for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"]
    ids = [c.id for c in cells]
    env = {**kernel_env, ANSWERS_ENV: json.dumps(["upgrade=yes"])}  # as --answer does
    k = start_kernel(env)
    for c in cells[: ids.index("rolling")]:
        k.ok(c.source, cell_id=c.id)
        if c.id == "parameters":  # as papermill would, after the parameters cell
            k.ok(f"CLUSTER_DIR = {str(cluster_dir)!r}; NODES = {NODES}", cell_id="injected")
    cluster = Cluster.attach(cluster_dir)
    k.send(cells[ids.index("rolling")].source, cell_id="rolling")
    _until(lambda: cluster.info("node-3")["running_keys"], "upgrade of node-3")
    k.kill()

    k = start_kernel()  # no answer given: the journaled one replays
    r = k.ok("%durable resume", timeout=RUN_TIMEOUT)
    assert "node-3: 1.0 -> 2.0" in r.stdout, str(r)
    assert cluster.upgrades() == dict.fromkeys(cluster.nodes, 1), _upgrades(cluster)
    assert _upgrades(cluster)["node-3"]["repeat"] >= 1, _upgrades(cluster)
    k.ok("cluster.stop()")
