"""A local HTTP service that fails a configurable share of requests.

Used by the example notebooks to show retries, replay and idempotency keys.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = [
    "FlakyService",
    "JSONHandler",
    "Server",
    "ServiceError",
    "StartStop",
    "call",
    "check_rate",
    "configure",
    "main",
    "request",
    "reset",
    "serve_until_signal",
    "stats",
]

HOST = "127.0.0.1"
WORK_PREFIX = "/work/"


class ServiceError(Exception):
    """A request answered with a status other than 200.

    Parameters
    ----------
    status : int
        HTTP status code.
    body : Any
        Decoded JSON body, or the raw text when it is not JSON.
    """

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body

    def __str__(self) -> str:
        detail = self.body.get("error", self.body) if isinstance(self.body, dict) else self.body
        return f"HTTP {self.status}: {detail}"


class StartStop:
    """A context manager for anything with ``start()`` (returning self) and ``stop()``."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Server(StartStop):
    """An HTTP server on 127.0.0.1 serving in a daemon thread; subclasses give ``_handler``.

    Parameters
    ----------
    port : int
        Port to bind; 0 picks a free one.
    """

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Self:
        """Bind the port and serve in a daemon thread; return self."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((HOST, self._requested_port), self._handler())
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"{type(self).__name__}:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def port(self) -> int:
        """The bound port (the requested one before ``start``)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])


class FlakyService(Server):
    """An HTTP server on 127.0.0.1 that fails ``/work/...`` requests at random.

    Parameters
    ----------
    fail_rate : float
        Probability in [0, 1] that a ``/work/`` request answers 503.
    seed : int or None
        Seed for the failure draws; the same seed gives the same sequence.
    port : int
        Port to bind; 0 picks a free one.
    latency : float
        Seconds to wait before answering each ``/work/`` request.
    """

    def __init__(
        self,
        fail_rate: float = 0.3,
        seed: int | None = None,
        port: int = 0,
        latency: float = 0.0,
    ) -> None:
        self.fail_rate = check_rate(fail_rate)
        self.latency = float(latency)
        self.fail_next = 0
        self.down = False
        super().__init__(port)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._reset_counters()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _make_handler(self)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8123``."""
        if self._server is None:
            raise RuntimeError("FlakyService is not running; call start() first")
        return f"http://{HOST}:{self.port}"

    def __repr__(self) -> str:
        where = f"url={self.url!r}" if self._server is not None else "stopped"
        return f"FlakyService({where}, fail_rate={self.fail_rate})"

    # -- state -------------------------------------------------------------

    def _reset_counters(self) -> None:
        self.total = 0
        self.ok = 0
        self.failed = 0
        self.by_path: Counter[str] = Counter()
        self.by_name: Counter[str] = Counter()

    def reset(self) -> None:
        """Zero the request counters (configuration is kept)."""
        with self._lock:
            self._reset_counters()

    def stats(self) -> dict[str, Any]:
        """Return the counters as ``/stats`` reports them."""
        with self._lock:
            return {
                "total": self.total,
                "ok": self.ok,
                "failed": self.failed,
                "by_path": dict(self.by_path),
            }

    def config(self) -> dict[str, Any]:
        """Return the current failure settings."""
        with self._lock:
            return self._config()

    def _config(self) -> dict[str, Any]:
        return {
            "fail_rate": self.fail_rate,
            "fail_next": self.fail_next,
            "down": self.down,
            "latency": self.latency,
        }

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change ``fail_rate``, ``fail_next``, ``down`` or ``latency``.

        Returns
        -------
        dict
            The settings after the change.
        """
        unknown = set(settings) - {"fail_rate", "fail_next", "down", "latency"}
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        with self._lock:
            if "fail_rate" in settings:
                self.fail_rate = check_rate(settings["fail_rate"])
            if "fail_next" in settings:
                self.fail_next = max(0, int(settings["fail_next"]))
            if "down" in settings:
                self.down = bool(settings["down"])
            if "latency" in settings:
                self.latency = max(0.0, float(settings["latency"]))
            return self._config()

    def _work(self, path: str, name: str) -> tuple[int, int, str | None]:
        """Count one ``/work/`` request and decide its fate: (status, n, reason)."""
        with self._lock:
            draw = self._rng.random()  # drawn every time: the sequence stays seeded
            self.total += 1
            self.by_path[path] += 1
            self.by_name[name] += 1
            n = self.by_name[name]
            if self.down:
                reason: str | None = "service is down"
            elif self.fail_next > 0:
                self.fail_next -= 1
                reason = "forced failure (fail_next)"
            elif draw < self.fail_rate:
                reason = f"random failure (fail_rate={self.fail_rate})"
            else:
                reason = None
            if reason is None:
                self.ok += 1
            else:
                self.failed += 1
            latency = self.latency
        if latency > 0:
            time.sleep(latency)
        return (200 if reason is None else 503), n, reason


def check_rate(rate: float, name: str = "fail_rate") -> float:
    """``rate`` as a float; ValueError naming ``name`` unless it is within [0, 1]."""
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name} must be within [0, 1], got {rate}")
    return rate


class JSONHandler(BaseHTTPRequestHandler):
    """A quiet request handler that answers JSON; subclasses define ``_route``."""

    def log_message(self, *args: Any) -> None:
        pass  # keep notebook output and test logs quiet

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw.strip() else {}

    def _route(self, method: str) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")


def _make_handler(service: FlakyService) -> type[BaseHTTPRequestHandler]:
    class Handler(JSONHandler):
        server_version = "FlakyService/1.0"

        def _route(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            if path.startswith(WORK_PREFIX) and len(path) > len(WORK_PREFIX):
                if method == "POST":
                    self._body()  # drain; the content is not used
                name = path[len(WORK_PREFIX) :]
                status, n, reason = service._work(path, name)
                if reason is not None:
                    self._send(status, {"error": reason, "name": name, "n": n})
                else:
                    token = self.headers.get("Idempotency-Key")
                    self._send(200, {"name": name, "n": n, "token": token})
            elif path == "/stats" and method == "GET":
                self._send(200, service.stats())
            elif path == "/config" and method == "GET":
                self._send(200, service.config())
            elif path == "/config" and method == "POST":
                try:
                    body = self._body()
                    if not isinstance(body, dict):
                        raise TypeError("body must be a JSON object")
                    self._send(200, service.configure(**body))
                except (
                    ValueError,
                    TypeError,
                ) as exc:  # JSONDecodeError is a ValueError
                    self._send(400, {"error": str(exc)})
            elif path == "/reset" and method == "POST":
                service.reset()
                self._send(200, service.stats())
            else:
                self._send(404, {"error": f"no route for {method} {path}"})

    return Handler


# -- client helpers ----------------------------------------------------------


def request(
    url: str,
    method: str = "GET",
    payload: Any = None,
    timeout: float = 5.0,
    headers: dict[str, str] | None = None,
) -> Any:
    """Send one HTTP request with an optional JSON body; return the decoded answer.

    Raises
    ------
    ServiceError
        If the answer's status is not 200.
    OSError
        If the server cannot be reached or does not answer within ``timeout``.
    """
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw.decode(errors="replace")
    if status != 200:
        raise ServiceError(status, body)
    return body


def call(
    url: str, path: str, timeout: float = 5.0, idempotency_key: str | None = None
) -> dict[str, Any]:
    """Send one ``POST /work/<path>`` request.

    Parameters
    ----------
    url : str
        Base URL of the service, e.g. ``svc.url``.
    path : str
        Work item name, e.g. ``"provision/node-1"``.
    timeout : float
        Socket timeout in seconds.
    idempotency_key : str or None
        Sent as the ``Idempotency-Key`` header and echoed back as ``token``.

    Returns
    -------
    dict
        ``{"name": ..., "n": ..., "token": ...}``.

    Raises
    ------
    ServiceError
        If the service answers with a status other than 200.
    OSError
        If the service cannot be reached (``urllib.error.URLError``, timeout).
    """
    headers = {} if idempotency_key is None else {"Idempotency-Key": str(idempotency_key)}
    target = f"{url.rstrip('/')}{WORK_PREFIX}{path.lstrip('/')}"
    return request(target, "POST", timeout=timeout, headers=headers)


def stats(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """Return the service's counters: ``total``, ``ok``, ``failed``, ``by_path``."""
    return request(f"{url.rstrip('/')}/stats", timeout=timeout)


def configure(url: str, timeout: float = 5.0, **settings: Any) -> dict[str, Any]:
    """Change ``fail_rate``, ``fail_next``, ``down`` or ``latency``; return them all."""
    return request(f"{url.rstrip('/')}/config", "POST", settings, timeout=timeout)


def reset(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """Zero the service's counters; return them."""
    return request(f"{url.rstrip('/')}/reset", "POST", {}, timeout=timeout)


# -- command line ------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT after printing ``PORT <n>`` on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: any free)")
    parser.add_argument("--fail-rate", type=float, default=0.3, help="share of failures")
    parser.add_argument("--seed", type=int, default=None, help="seed for the failure draws")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    args = parser.parse_args(argv)
    return serve_until_signal(FlakyService(args.fail_rate, args.seed, args.port, args.latency))


def serve_until_signal(server: Any) -> int:
    """Start ``server``, print ``PORT <n>`` on stdout, and stop it on SIGTERM or SIGINT.

    ``server`` has ``start()``, ``stop()`` and ``port``, as :class:`FlakyService` does.
    """
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
    print(f"PORT {server.port}", flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
