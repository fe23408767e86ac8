"""A small local cluster of HTTP nodes to upgrade, one process per node.

Used by ``03_rolling_upgrade.ipynb``. A cluster is a folder: ``cluster.json`` (its
settings), ``nodes/<node>.json`` (each node's state: version, drained, the outcomes of
the idempotency keys it has seen), ``run.json`` (the ports and pids of the running
node processes) and ``requests.jsonl``, an append-only log with one JSON line per
request a node answered. The node processes outlive the kernel that started them, so
a kernel killed mid-upgrade leaves the cluster as it was; ``Cluster(folder).start()``
in a new kernel attaches to the running nodes (and restarts the stopped ones from
their saved state).

Node endpoints: ``GET /version``, ``GET /health`` (503 while a node starts after an
upgrade), ``POST /drain``, ``POST /undrain`` and ``POST /upgrade`` with a body
``{"version": "2.0"}`` (409 unless the node is drained; every upgrade restarts the
node, even to the version it runs). A POST with an ``Idempotency-Key`` header seen
before answers the first outcome again without doing anything; while the first
request with that key still runs, it answers 409.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from flaky_service import (
    HOST,
    JSONHandler,
    Server,
    ServiceError,
    StartStop,
    check_rate,
    request,
    serve_until_signal,
)

__all__ = ["ENDPOINTS", "Cluster", "Node", "ServiceError", "main"]

ENDPOINTS = {"version": "GET", "health": "GET", "drain": "POST", "undrain": "POST",
             "upgrade": "POST"}  # fmt: skip
CONFIG, RUN, LOG, NODES = "cluster.json", "run.json", "requests.jsonl", "nodes"
KEY_HEADER = "Idempotency-Key"
ADMIN = "/_admin"  # the cluster's own view of a node: not a node API, not logged


class Cluster(StartStop):
    """N node processes on 127.0.0.1 behind HTTP, their state kept in ``directory``.

    Parameters
    ----------
    directory : str or Path, optional
        The cluster's folder; a new temporary folder by default. A folder that
        already holds a cluster keeps its nodes' state (versions, seen keys).
    nodes : int or sequence of str
        How many nodes (named ``node-1`` ...) or their names.
    version : str
        The version a new node runs.
    seed : int
        Seed for the random 503s; each node draws its own seeded sequence.
    upgrade_seconds : float
        How long an upgrade takes on the node.
    hang_seconds : float
        How long a hanging upgrade takes (set it past the client's timeout).
    unhealthy_after_upgrade : mapping of str to int, optional
        Node -> how many health checks fail (503) after each of its upgrades.
    slow_upgrades : mapping of str to int, optional
        Node -> how many of its upgrades hang for ``hang_seconds``.
    flaky : mapping of str to float, optional
        Endpoint -> share of its requests answered 503 at random, before the node
        looks at them (an idempotency key is not recorded then).

    Notes
    -----
    The settings are written to the folder at each ``start()``; running nodes read
    them at every request, so they apply at once.
    """

    def __init__(
        self,
        directory: str | Path | None = None,
        nodes: int | Sequence[str] = 5,
        *,
        version: str = "1.0",
        seed: int = 0,
        upgrade_seconds: float = 0.5,
        hang_seconds: float = 5.0,
        unhealthy_after_upgrade: Mapping[str, int] | None = None,
        slow_upgrades: Mapping[str, int] | None = None,
        flaky: Mapping[str, float] | None = None,
    ) -> None:
        if directory is None:
            directory = tempfile.mkdtemp(prefix="cluster-")
        self.directory = Path(directory).resolve()
        names = [f"node-{i}" for i in range(1, nodes + 1)] if isinstance(nodes, int) else nodes
        self.config: dict[str, Any] = {
            "nodes": list(names),
            "version": str(version),
            "seed": int(seed),
            "upgrade_seconds": float(upgrade_seconds),
            "hang_seconds": float(hang_seconds),
            "unhealthy_after_upgrade": dict(unhealthy_after_upgrade or {}),
            "slow_upgrades": dict(slow_upgrades or {}),
            "flaky": {e: check_rate(r, f"flaky[{e!r}]") for e, r in (flaky or {}).items()},
        }
        unknown = set(self.config["flaky"]) - set(ENDPOINTS)
        if unknown:
            raise ValueError(f"flaky: unknown endpoints {sorted(unknown)}; use {list(ENDPOINTS)}")
        self.ports: dict[str, int] = {}
        self._procs: dict[str, subprocess.Popen] = {}

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Start the nodes that are not running (attach to the others); return self.

        Returns once every node answers; the nodes serve in their own processes. A node
        that died comes back on its port when it is free, so that a client holding this
        cluster's ports (a kernel blocked on a suspended cell) reaches it again.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / NODES).mkdir(exist_ok=True)
        _write_json(self.directory / CONFIG, self.config)
        running = self._run_file()
        spawned = {}
        for name in self.nodes:
            port = running.get(name, {}).get("port")
            if port and self._info(port, name) is not None:
                self.ports[name] = port
            else:
                spawned[name] = self._spawn(name, port or 0)
        for name, proc in spawned.items():
            line = _first_line(proc)
            if not line.startswith("PORT ") and running.get(name, {}).get("port"):
                proc.wait(timeout=10)  # its old port is taken: any free one
                proc = self._spawn(name, 0)
                line = _first_line(proc)
            if not line.startswith("PORT "):
                proc.wait(timeout=10)
                err = (self.directory / NODES / f"{name}.err").read_text(errors="replace")
                raise RuntimeError(f"node {name} did not start (exit {proc.returncode}):\n{err}")
            self.ports[name] = int(line.split()[1])
            self._procs[name] = proc
        _write_json(self.directory / RUN, {
            n: {"port": p, "pid": self._procs[n].pid if n in self._procs else running[n]["pid"]}
            for n, p in self.ports.items()
        })  # fmt: skip
        return self

    @classmethod
    def attach(cls, directory: str | Path) -> Cluster:
        """The cluster in ``directory`` with its saved settings, started or not; starts nothing."""
        path = Path(directory).resolve()
        saved = _read_json(path / CONFIG)
        if saved is None:
            raise FileNotFoundError(f"no cluster in {path}: start one with Cluster(folder).start()")
        nodes = saved.pop("nodes")
        cluster = cls(path, nodes, **saved)
        cluster.ports = {n: r["port"] for n, r in cluster._run_file().items()}
        return cluster

    def _spawn(self, name: str, port: int = 0) -> subprocess.Popen:
        with open(self.directory / NODES / f"{name}.err", "ab") as err:
            return subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "node",
                 str(self.directory), name, "--port", str(port)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True,
                start_new_session=True,  # not killed with the kernel's process group
            )  # fmt: skip

    def info(self, node: str) -> dict[str, Any] | None:
        """The node's own view (state, pid, ``running_keys``), not logged; None if it is down."""
        return self._info(self.ports[node], node) if node in self.ports else None

    def _info(self, port: int, name: str) -> dict[str, Any] | None:
        """The node's own view if ``port`` is that node of this cluster, else None."""
        try:
            info = request(f"http://{HOST}:{port}{ADMIN}", timeout=2)
        except (OSError, ServiceError, ValueError):
            return None
        same = info.get("name") == name and info.get("directory") == str(self.directory)
        return info if same else None

    def stop(self) -> None:
        """Stop every node process (SIGTERM, then SIGKILL); their state stays in the folder."""
        running = self._run_file()
        pids = {}
        for name, rec in running.items():
            info = self._info(rec["port"], name)
            if info is not None:
                pids[name] = info["pid"]
                with contextlib.suppress(ProcessLookupError):
                    os.kill(info["pid"], signal.SIGTERM)
        for name, proc in self._procs.items():
            if name not in pids:
                proc.kill()  # ours, but not answering
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        for name, pid in pids.items():
            proc = self._procs.get(name)
            while (proc.poll() is None) if proc else _alive(pid):
                if time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    break
                time.sleep(0.05)
        self._procs.clear()
        self.ports.clear()
        with contextlib.suppress(FileNotFoundError):
            (self.directory / RUN).unlink()

    def __getstate__(self) -> dict[str, Any]:
        # Process handles stay with the kernel that started them; a restored
        # Cluster still reaches (and stops) the nodes through their ports.
        return {**self.__dict__, "_procs": {}}

    # -- using it ----------------------------------------------------------

    @property
    def nodes(self) -> list[str]:
        """The node names, in order."""
        return list(self.config["nodes"])

    def url(self, node: str) -> str:
        """Base URL of ``node``, e.g. ``http://127.0.0.1:40123``."""
        if node not in self.ports:
            raise KeyError(f"{node} is not running in {self.directory}; call start() first")
        return f"http://{HOST}:{self.ports[node]}"

    def get(self, node: str, endpoint: str, *, timeout: float = 5.0) -> dict[str, Any]:
        """``GET /<endpoint>`` on ``node``; raises :class:`ServiceError` unless 200."""
        return request(f"{self.url(node)}/{endpoint}", timeout=timeout)

    def post(
        self,
        node: str,
        endpoint: str,
        body: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """``POST /<endpoint>`` on ``node``, with ``key`` as its Idempotency-Key.

        Raises
        ------
        ServiceError
            If the node answers with a status other than 200 (503: try again).
        OSError
            If the node does not answer within ``timeout`` (TimeoutError).
        """
        headers = {} if key is None else {KEY_HEADER: key}
        url = f"{self.url(node)}/{endpoint}"
        return request(url, "POST", dict(body or {}), timeout=timeout, headers=headers)

    def status(self) -> list[dict[str, Any]]:
        """One row per node as the node sees itself (not logged): version, drained..."""
        rows = []
        for name in self.nodes:
            info = self.info(name)
            state = info["state"] if info else _read_json(self._state_path(name)) or {}
            rows.append({"node": name, "running": info is not None,
                         "version": state.get("version", self.config["version"]),
                         "drained": state.get("drained", False),
                         "upgrades": state.get("upgrades", 0)})  # fmt: skip
        return rows

    def log(self) -> list[dict[str, Any]]:
        """Every request the nodes answered, in order: one dict per line of the log."""
        path = self.directory / LOG
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def upgrades(self) -> dict[str, int]:
        """Node -> how many upgrades it really performed (repeats of a key not counted)."""
        done = Counter(r["node"] for r in self.log() if r["outcome"] == "upgraded")
        return {name: done[name] for name in self.nodes}

    def _run_file(self) -> dict[str, dict[str, int]]:
        """Node -> {"port", "pid"} of the processes the last start() left running."""
        return _read_json(self.directory / RUN) or {}

    def _state_path(self, name: str) -> Path:
        return self.directory / NODES / f"{name}.json"

    def __repr__(self) -> str:
        where = f"{len(self.ports)}/{len(self.nodes)} running" if self.ports else "stopped"
        return f"Cluster({str(self.directory)!r}, nodes={self.nodes}, {where})"


class Node(Server):
    """One node: an HTTP server whose state is saved in the cluster's folder.

    Parameters
    ----------
    directory : Path
        The cluster's folder (holds ``cluster.json``).
    name : str
        The node's name, e.g. ``node-1``.
    port : int
        Port to bind; 0 picks a free one.
    """

    def __init__(self, directory: str | Path, name: str, port: int = 0) -> None:
        super().__init__(port)
        self.directory = Path(directory).resolve()
        self.name = name
        config = self._config()
        self._rng = random.Random(f"{config['seed']}:{name}")
        self._lock = threading.Lock()
        self._state = _read_json(self.directory / NODES / f"{name}.json") or {
            "version": config["version"], "drained": False, "upgrades": 0,
            "sick_checks": 0, "hangs": 0, "keys": {},
        }  # fmt: skip
        self._running: set[str] = set()  # idempotency keys whose first request runs

    def _handler(self) -> type[JSONHandler]:
        return _make_handler(self)

    def _config(self) -> dict[str, Any]:
        return json.loads((self.directory / CONFIG).read_text())

    def _save(self) -> None:
        _write_json(self.directory / NODES / f"{self.name}.json", self._state)

    def info(self) -> dict[str, Any]:
        with self._lock:
            state = {k: v for k, v in self._state.items() if k != "keys"}
            return {"name": self.name, "directory": str(self.directory), "pid": os.getpid(),
                    "state": state, "running_keys": sorted(self._running)}  # fmt: skip

    def handle(self, method: str, endpoint: str, key: str | None, body: Any) -> tuple[int, dict]:
        """Answer one request and log it; returns (status, body)."""
        claimed: list[str] = []
        try:
            status, answer, outcome = self._handle(endpoint, key, body, claimed)
            # Logged before the answer is sent, and before the key is released: a
            # client that gave up (timeout, killed kernel) does not hide the request.
            self.record(method, endpoint, key, status, outcome)
            return status, answer
        finally:
            with self._lock:
                self._running.difference_update(claimed)

    def _handle(self, endpoint: str, key: str | None, body: Any, claimed: list[str]):
        """(status, body, outcome); a key whose first request starts is added to ``claimed``."""
        config = self._config()
        key = key if ENDPOINTS[endpoint] == "POST" else None  # reads need no key
        with self._lock:
            rate = config["flaky"].get(endpoint, 0.0)
            if rate and self._rng.random() < rate:
                return 503, {"error": f"{self.name}: {endpoint} unavailable (injected)"}, "503"
            if key in self._state["keys"]:
                return 200, self._state["keys"][key], "repeat"
            if key is not None and key in self._running:
                error = f"{self.name}: the first request with this key still runs; try again"
                return 409, {"error": error}, "in progress"
            if endpoint != "upgrade":
                return self._remember(key, *self._simple(endpoint))
            if not self._state["drained"]:
                return 409, {"error": f"{self.name} serves traffic: drain it first"}, "refused"
            slow = self._state["hangs"] < config["slow_upgrades"].get(self.name, 0)
            self._state["hangs"] += slow
            self._save()
            if key is not None:
                self._running.add(key)
                claimed.append(key)
        time.sleep(config["hang_seconds"] if slow else config["upgrade_seconds"])
        with self._lock:
            return self._remember(key, *self._upgrade(body, config))

    def _remember(self, key: str | None, status: int, answer: dict, outcome: str):
        """Keep a successful answer for its idempotency key (under the lock)."""
        if key is not None and status == 200:
            self._state["keys"][key] = answer
            self._save()
        return status, answer, outcome

    def _simple(self, endpoint: str) -> tuple[int, dict, str]:
        s = self._state
        if endpoint == "health":
            if s["sick_checks"] > 0:
                s["sick_checks"] -= 1
                self._save()
                error = f"{self.name} is starting version {s['version']}"
                return 503, {"error": error}, "unhealthy"
            answer = {"status": "ok", "version": s["version"], "drained": s["drained"]}
            return 200, {"node": self.name, **answer}, "ok"
        if endpoint in ("drain", "undrain"):
            s["drained"] = endpoint == "drain"
            self._save()
            return 200, {"node": self.name, "drained": s["drained"]}, endpoint + "ed"
        return 200, {"node": self.name, "version": s["version"]}, "ok"

    def _upgrade(self, body: Any, config: dict[str, Any]) -> tuple[int, dict, str]:
        # Under the lock: the new version, the restart and the key are saved together.
        version = body.get("version") if isinstance(body, dict) else None
        if not isinstance(version, str) or not version:
            return 400, {"error": 'upgrade needs a body {"version": "..."}'}, "bad request"
        s = self._state
        previous, s["version"] = s["version"], version
        s["upgrades"] += 1
        s["sick_checks"] = config["unhealthy_after_upgrade"].get(self.name, 0)
        self._save()
        answer = {"node": self.name, "version": version, "previous": previous,
                  "upgrade": s["upgrades"]}  # fmt: skip
        return 200, answer, "upgraded"

    def record(self, method: str, endpoint: str, key: str | None, status: int, outcome: str):
        """Append one line to the cluster's request log (one write: lines never mix)."""
        line = {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            "node": self.name, "method": method, "endpoint": endpoint, "key": key,
            "status": status, "outcome": outcome, "version": self._state["version"],
        }  # fmt: skip
        fd = os.open(self.directory / LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(line) + "\n").encode())
        finally:
            os.close(fd)


def _make_handler(node: Node) -> type[JSONHandler]:
    class Handler(JSONHandler):
        server_version = "ClusterNode/1.0"

        def _route(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            if path == ADMIN and method == "GET":
                self._send(200, node.info())
                return
            endpoint = path.strip("/")
            if ENDPOINTS.get(endpoint) != method:
                self._send(404, {"error": f"no route for {method} {path}"})
                return
            try:
                body = self._body() if method == "POST" else {}
            except ValueError as exc:
                self._send(400, {"error": f"body is not JSON: {exc}"})
                return
            status, answer = node.handle(method, endpoint, self.headers.get(KEY_HEADER), body)
            with contextlib.suppress(OSError):  # the client may have given up
                self._send(status, answer)

    return Handler


# -- small helpers -------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _write_json(path: Path, data: Any) -> None:
    """Replace ``path`` atomically: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _first_line(proc: subprocess.Popen) -> str:
    """What a node process prints when it serves (``PORT <n>``), or "" when it did not."""
    line = proc.stdout.readline() if proc.stdout else ""
    if proc.stdout:
        proc.stdout.close()  # the node prints nothing after its port
    return line


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- command line ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``node DIR NAME`` serves one node; ``start``/``stop``/``status DIR`` drive a cluster."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    node = sub.add_parser("node", help="serve one node (prints PORT <n>)")
    node.add_argument("directory", type=Path)
    node.add_argument("name")
    node.add_argument("--port", type=int, default=0)
    start = sub.add_parser("start", help="start a cluster in DIRECTORY (or attach to it)")
    start.add_argument("directory", type=Path)
    start.add_argument("--nodes", type=int, default=5)
    for command in ("stop", "status"):
        sub.add_parser(command, help=f"{command} the cluster in DIRECTORY").add_argument(
            "directory", type=Path
        )
    args = parser.parse_args(argv)
    if args.command == "node":
        return serve_until_signal(Node(args.directory, args.name, args.port))
    if args.command == "start" and not (args.directory / CONFIG).exists():
        cluster = Cluster(args.directory, args.nodes)
    else:
        try:
            cluster = Cluster.attach(args.directory)
        except FileNotFoundError as exc:
            print(f"cluster.py: {exc}", file=sys.stderr)
            return 2
    if args.command == "start":
        cluster.start()
    elif args.command == "stop":
        cluster.stop()
    for row in cluster.status():
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
