"""Real-browser test helpers: JupyterLab on 127.0.0.1 and headless Chromium via Playwright.

``Lab`` starts ``jupyter lab`` as a subprocess, isolated from the user's settings and
workspaces and kept offline (no news, no update check, no PyPI extension manager).
``Page`` drives a notebook in it through Playwright's sync API. Every wait has an explicit
timeout; when one fails, the page is screenshotted into ``test-artifacts/<test>/`` and the
error says what was awaited and shows the page's visible text and the server's log tail.

Browser tests never skip: a missing ``chromium`` or ``playwright`` is a failure that says
to run ``tests/setup.sh``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
SETUP_HINT = "run tests/setup.sh as root (installs Debian's chromium and the [test] extra)"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    # Loopback only: every host name but 127.0.0.1 fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]

# User settings written into the Lab's private settings folder.
LAB_SETTINGS = {
    # No "would you like news?" toast, no request to jupyter.org.
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


# ``python -m <module>``, less jsonschema's optional IRI format checker: importing it
# compiles ~40 Lark grammars (~3 CPU-s a server start); no Jupyter event schema uses it.
_SERVE = (
    "import runpy, sys\n"
    "sys.modules.setdefault('rfc3987_syntax', None)\n"
    "module = sys.argv.pop(1)\n"
    "runpy.run_module(module, run_name='__main__', alter_sys=True)"
)


def chromium_path() -> str:
    """The Debian chromium binary; a clear failure (never a skip) when it is missing."""
    path = shutil.which("chromium")
    if not path:
        raise RuntimeError(f"no `chromium` on PATH: {SETUP_HINT}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the test process dies, even by SIGKILL
    (Linux), so no server is left behind; the server then shuts its kernels down."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _tail(path: Path | None, chars: int = 3000) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-chars:]


class Lab:
    """``jupyter lab`` on 127.0.0.1 with a random token, serving ``root_dir``.

    Use as a context manager. ``env`` is the server's environment (kernels inherit it);
    by default the current one without ``JPY_*`` / ``DURABLE_NB*`` variables.
    """

    module = "jupyterlab"  # what ``python -m`` starts
    status_bar = True  # JupyterLab's status bar says "<kernel> | Idle"

    def __init__(
        self,
        root_dir: str | os.PathLike,
        env: dict[str, str] | None = None,
        startup_timeout: float = 60,
    ) -> None:
        self.root_dir = Path(root_dir).resolve()
        if env is None:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "DURABLE_NB"))}
        self.env = dict(env)
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._home: Path | None = None  # settings, workspaces, config, runtime, log
        self.log_path: Path | None = None
        self.started_in: float | None = None

    # -- life cycle ---------------------------------------------------------------------

    def _write_settings(self) -> Path:
        settings = self._home / "settings"
        for name, values in LAB_SETTINGS.items():
            f = settings / f"{name}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(values))
        return settings

    def start(self) -> Lab:
        self._home = Path(tempfile.mkdtemp(prefix="durable-lab-"))
        self.log_path = self._home / "lab.log"
        settings = self._write_settings()
        workspaces = self._home / "workspaces"
        workspaces.mkdir()
        env = dict(self.env)
        # Isolate from the user's Jupyter config and runtime files (kernelspecs are found
        # through sys.prefix, which these do not touch).
        env["JUPYTER_CONFIG_DIR"] = str(self._home / "config")
        env["JUPYTER_RUNTIME_DIR"] = str(self._home / "runtime")
        env.setdefault("PYTHONUNBUFFERED", "1")
        cmd = [
            sys.executable, "-c", _SERVE, self.module,
            "--no-browser", "--allow-root",
            "--ip=127.0.0.1", f"--port={self.port}", "--port-retries=0",
            f"--ServerApp.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            *self._app_args(settings, workspaces),
        ]  # fmt: skip
        t0 = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, env=env, cwd=self.root_dir, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )  # fmt: skip
        deadline = t0 + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"jupyter lab exited with {self.proc.returncode} while starting:\n"
                    + _tail(self.log_path)
                )
            try:
                self.api("api/status", timeout=2)
                break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(
                    f"jupyter lab not ready in {self.startup_timeout} s:\n" + _tail(self.log_path)
                )
            time.sleep(0.1)
        self.started_in = time.monotonic() - t0
        return self

    def _app_args(self, settings: Path, workspaces: Path) -> list[str]:
        return [
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={workspaces}",
            "--LabApp.expose_app_in_browser=True",
        ]

    def stop(self, timeout: float = 15) -> None:
        """Shut the kernels down through the API, then the server (SIGTERM, then SIGKILL)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(Exception):
                self.shutdown_kernels()
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # its own session: only our server
                proc.wait(timeout=10)
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers ------------------------------------------------------------------------

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def notebook_url(self, nb_path: str | os.PathLike) -> str:
        """The Lab URL of a notebook, given relative to ``root_dir`` (or absolute inside it)."""
        p = Path(nb_path)
        if p.is_absolute():
            p = p.resolve().relative_to(self.root_dir)
        # ?reset: start from an empty layout, not from a saved workspace.
        return self.url(f"lab/tree/{quote(p.as_posix())}?reset")

    def api(self, path: str, method: str = "GET", body=None, timeout: float = 10):
        """Call the server's REST API; returns decoded JSON (or None)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.base}/{path.lstrip('/')}", data=data, method=method,
            headers={"Authorization": f"token {self.token}",
                     "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def kernels(self) -> list[dict]:
        """The running kernels: ``[{"id", "name", "execution_state", ...}]``.

        jupyter_server answers 500 while a kernel it has just registered has no
        ``last_activity`` yet (jupyter-server/enterprise_gateway#1395, jupyter/notebook#5345:
        a window of milliseconds during a start); asked again, it answers.
        """
        deadline = time.monotonic() + 5
        while True:
            try:
                return self.api("api/kernels")
            except urllib.error.HTTPError as e:
                if e.code != 500 or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def shutdown_kernels(self) -> None:
        """Shut down every kernel (their sessions go with them); an open notebook page
        then shows "No Kernel" until it is reopened or a kernel is chosen."""
        for k in self.kernels():
            self.api(f"api/kernels/{k['id']}", method="DELETE", timeout=30)

    def log(self, chars: int = 3000) -> str:
        """The tail of the server's log (stdout and stderr, including kernels' stderr)."""
        return _tail(self.log_path, chars)


class Notebook7(Lab):
    """``jupyter notebook`` (Notebook 7) the same way: one notebook per page, no status bar."""

    module = "notebook"
    status_bar = False

    def _app_args(self, settings: Path, workspaces: Path) -> list[str]:
        return [
            f"--JupyterNotebookApp.user_settings_dir={settings}",
            f"--JupyterNotebookApp.workspaces_dir={workspaces}",
            "--JupyterNotebookApp.expose_app_in_browser=True",
        ]

    def notebook_url(self, nb_path: str | os.PathLike) -> str:
        p = Path(nb_path)
        if p.is_absolute():
            p = p.resolve().relative_to(self.root_dir)
        return self.url(f"notebooks/{quote(p.as_posix())}")


# Keeps the texts a cell prompt has shown since it was armed, in ``el.__seen``.
_WATCH_PROMPT = """(el) => {
    el.__seen = [el.innerText];
    if (el.__observer) el.__observer.disconnect();
    el.__observer = new MutationObserver(() => el.__seen.push(el.innerText));
    el.__observer.observe(el, {childList: true, characterData: true, subtree: true});
}"""


# Keeps the status bar texts seen since it was armed, in ``window.__statusSeen``.
_WATCH_STATUS = """() => {
    const bar = document.querySelector('#jp-main-statusbar');
    window.__statusSeen = [bar.innerText];
    if (window.__statusObserver) window.__statusObserver.disconnect();
    window.__statusObserver = new MutationObserver(() => window.__statusSeen.push(bar.innerText));
    window.__statusObserver.observe(bar, {childList: true, characterData: true, subtree: true});
}"""


def kernel_display_name(kernel_name: str) -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    return KernelSpecManager().get_kernel_spec(kernel_name).display_name


class Page:
    """One JupyterLab tab in headless Chromium; cells are addressed by index (from 0).

    ``Page.launch(lab, test_name)`` is a context manager that starts Playwright and
    Chromium and closes them afterwards. Screenshots go to ``test-artifacts/<test_name>/``.
    """

    def __init__(self, lab: Lab, page, artifacts: Path, timeout: float = 30) -> None:
        self.lab = lab
        self.page = page
        self.artifacts = artifacts
        self.timeout = timeout
        self.kernel_display = "Python 3 (durable)"
        self._shots = 0
        self._failure_shot = False
        self.console: list[str] = []
        page.set_default_timeout(timeout * 1000)

    @classmethod
    @contextlib.contextmanager
    def launch(
        cls, lab: Lab, test_name: str, timeout: float = 30, viewport=(1280, 900)
    ) -> Iterator[Page]:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as e:
            raise RuntimeError(f"the `playwright` package is missing: {SETUP_HINT}") from e
        exe = chromium_path()
        artifacts = ARTIFACTS / re.sub(r"[^\w.-]+", "_", test_name)
        shutil.rmtree(artifacts, ignore_errors=True)
        artifacts.mkdir(parents=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(
                    viewport={"width": viewport[0], "height": viewport[1]}
                )
                page = context.new_page()
                pg = cls(lab, page, artifacts, timeout)
                page.on("console", pg._on_console)
                page.on("pageerror", lambda e: pg.console.append(f"pageerror: {e}"))
                try:
                    yield pg
                except BaseException:
                    if not pg._failure_shot:  # a failure outside Page.step
                        pg.screenshot("FAILED", quiet=True)
                    raise
            finally:
                browser.close()

    def _on_console(self, msg) -> None:
        if msg.type in ("error", "warning"):
            self.console.append(f"{msg.type}: {msg.text}")

    # -- failure reports ----------------------------------------------------------------

    def visible_text(self, chars: int = 4000) -> str:
        try:
            text = self.page.evaluate("() => document.body.innerText")
        except Exception as e:  # the page may be gone
            return f"<no page text: {e}>"
        text = re.sub(r"\n\s*\n+", "\n", text)
        return text if len(text) <= chars else text[:chars] + "\n…"

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        """Run a block; if it fails, screenshot and raise with the page's visible text."""
        try:
            yield
        except Exception as e:
            shot = self.screenshot(f"FAILED-{what}", quiet=True)
            self._failure_shot = True
            console = "\n".join(self.console[-15:])
            raise AssertionError(
                f"{what}: {type(e).__name__}: {e}\n"
                f"--- screenshot: {shot}\n"
                f"--- visible text:\n{self.visible_text()}\n"
                f"--- browser console (errors/warnings):\n{console}\n"
                f"--- server log:\n{self.lab.log(2000)}"
            ) from e

    def screenshot(self, stage: str, cell: int | None = None, quiet: bool = False) -> Path | None:
        """Save ``test-artifacts/<test>/<NN>-<stage>.png`` (numbered in order of stages):
        the whole window, or only cell ``cell`` (input and outputs, e.g. for the README).

        JupyterLab scrolls inside the notebook panel, so a window shot shows only what is
        scrolled into view."""
        self._shots += 1
        name = re.sub(r"[^\w.-]+", "_", stage)[:80]
        path = self.artifacts / f"{self._shots:02d}-{name}.png"
        try:
            if cell is None:
                self.page.screenshot(path=str(path))
            else:
                self.cell(cell).screenshot(path=str(path))
        except Exception:
            if not quiet:
                raise
            return None
        return path

    # -- notebook -----------------------------------------------------------------------

    def open(
        self, nb_path: str | os.PathLike, kernel_display: str | None = None, timeout: float = 60
    ) -> None:
        """Open a notebook and wait until its kernel exists and is idle.

        A notebook without a usable kernelspec gets JupyterLab's "Select Kernel" dialog;
        it is answered with ``kernel_display`` (default "Python 3 (durable)").
        """
        if kernel_display:
            self.kernel_display = kernel_display
        with self.step(f"open {nb_path}"):
            self.page.goto(self.lab.notebook_url(nb_path))
            self.notebook.locator(".jp-Cell").first.wait_for(timeout=timeout * 1000)
            if not self.lab.status_bar:  # Notebook 7: the kernel starts with the page
                self._until_kernels_idle(timeout)
                return
            chooser = self.page.locator(".jp-Dialog", has_text="Select Kernel")
            self.status(f"{self.kernel_display} | Idle").or_(chooser).first.wait_for(
                timeout=timeout * 1000
            )
            if chooser.is_visible():
                chooser.locator("select").select_option(label=self.kernel_display)
                chooser.locator("button.jp-mod-accept").click()
                chooser.wait_for(state="detached")
        self.wait_idle(timeout)

    def status(self, text: str):
        """The status bar item whose text is exactly ``text``."""
        return self.page.locator("#jp-main-statusbar").get_by_text(text, exact=True)

    @property
    def notebook(self):
        """The notebook in the current (visible) tab."""
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first

    def wait_idle(self, timeout: float | None = None) -> None:
        """Wait for the status bar to read "<kernel> | Idle".

        The toolbar's circle is "idle" before a kernel even exists; the status bar text is
        not.
        """
        if not self.lab.status_bar:
            self._until_kernels_idle(timeout or self.timeout)
            return
        text = f"{self.kernel_display} | Idle"
        with self.step(f"wait for status bar '{text}'"):
            self.status(text).wait_for(timeout=(timeout or self.timeout) * 1000)

    def _until_kernels_idle(self, timeout: float) -> None:
        """Without a status bar: until the server has a kernel and every kernel is idle."""
        with self.step("wait for the kernel to be idle (server API)"):
            deadline = time.monotonic() + timeout
            while not ((ks := self.lab.kernels()) and all(
                    k["execution_state"] == "idle" for k in ks)):  # fmt: skip
                if time.monotonic() > deadline:
                    raise TimeoutError(f"kernels not idle within {timeout} s: {ks}")
                time.sleep(0.1)

    def cell(self, index: int):
        return self.notebook.locator(".jp-Cell").nth(index)

    def output(self, index: int):
        return self.cell(index).locator(".jp-OutputArea").first

    def output_text(self, index: int) -> str:
        """The visible text of all of a cell's outputs, without the "[n]:" prompts of
        execute results ("" when it has none)."""
        return "\n".join(self.output(index).locator(".jp-OutputArea-output").all_inner_texts())

    def _edit(self, index: int) -> None:
        editor = self.cell(index).locator(".cm-content")
        editor.scroll_into_view_if_needed()
        editor.click()

    def type(self, index: int, text: str) -> None:
        """Replace the source of cell ``index`` with ``text`` (typed, as a person would)."""
        with self.step(f"type into cell {index}"):
            self._edit(index)
            self.page.keyboard.press("ControlOrMeta+a")
            self.page.keyboard.press("Delete")
            # insert_text: no auto-closing brackets or auto-indent from the editor.
            self.page.keyboard.insert_text(text)
            self.cell(index).locator(".cm-content").filter(has_text=text.splitlines()[0]).wait_for()

    def run(self, index: int, wait: bool = True, timeout: float | None = None) -> None:
        """Run cell ``index`` (click into it, Shift+Enter).

        Waits until JupyterLab has queued it (its prompt showed ``[*]``) and, if ``wait``,
        until it finished (a number in the prompt) and the kernel is idle again. Use
        ``wait=False`` for a cell that blocks, e.g. on a widget.
        """
        with self.step(f"run cell {index}"):
            prompt = self.cell(index).locator(".jp-InputArea-prompt").element_handle()
            # Record every prompt text: "[*]" may be too brief for polling to see.
            self.page.evaluate(_WATCH_PROMPT, prompt)
            self._edit(index)
            self.page.keyboard.press("Shift+Enter")
            self.page.wait_for_function(
                "(el) => el.__seen.some((t) => t.includes('[*]'))", arg=prompt
            )
            if wait:
                self.page.wait_for_function(
                    "(el) => /\\[\\d+\\]/.test(el.innerText)",  # "[*]" was seen above
                    arg=prompt,
                    timeout=(timeout or self.timeout) * 1000,
                )
        if wait:
            self.wait_idle(timeout)

    def wait_output(self, index: int, text: str | re.Pattern, timeout: float | None = None) -> str:
        """Wait until cell ``index``'s output contains ``text`` (a string or regex);
        returns ``output_text(index)``."""
        what = text.pattern if isinstance(text, re.Pattern) else text
        with self.step(f"wait for {what!r} in the output of cell {index}"):
            out = self.output(index)
            if isinstance(text, re.Pattern):
                out.filter(has_text=text).wait_for(timeout=(timeout or self.timeout) * 1000)
            else:
                out.get_by_text(text).first.wait_for(timeout=(timeout or self.timeout) * 1000)
            return self.output_text(index)

    def click_button(self, index: int, label: str) -> None:
        """Click the widget button labelled ``label`` in cell ``index``'s output."""
        with self.step(f"click button {label!r} in cell {index}"):
            exact = re.compile(rf"^\s*{re.escape(label)}\s*$")
            button = self.output(index).locator("button").filter(has_text=exact).first
            button.scroll_into_view_if_needed()
            button.click()

    def fill(
        self, index: int, value: str, label: str | None = None, nth: int = 0, enter: bool = True
    ) -> None:
        """Fill a widget text field in cell ``index``'s output: the one whose description
        is ``label`` if given, else the ``nth`` text field. Presses Enter afterwards (unless
        ``enter=False``): a ``Text`` widget sends its value on Enter or blur when
        ``continuous_update=False``, and ``on_submit`` fires only on Enter."""
        with self.step(f"fill {label or nth!r} in cell {index}"):
            out = self.output(index)
            fields = "input[type=text], input:not([type]), textarea"
            if label is not None:
                widget = out.locator(".widget-inline-hbox, .widget-text, .widget-textarea").filter(
                    has=self.page.locator(".widget-label", has_text=label)
                )
                field = widget.locator(fields).first
            else:
                field = out.locator(fields).nth(nth)
            field.fill(value)
            if enter:
                field.press("Enter")

    def restart_kernel(self, timeout: float = 60) -> None:
        """Restart the kernel through the Kernel menu's command and its confirm dialog,
        then wait until the new kernel is idle."""
        with self.step("restart the kernel"):
            # Record the status bar's texts: the old kernel's "Idle" must not count.
            self.page.evaluate(_WATCH_STATUS)
            # Not awaited: the command's promise settles only once the dialog is answered.
            self.page.evaluate(
                "() => { window.jupyterapp.commands.execute('kernelmenu:restart'); }"
            )
            dialog = self.page.locator(".jp-Dialog", has_text="Restart Kernel")
            dialog.locator("button.jp-mod-accept").click()
            dialog.wait_for(state="detached")
            self.page.wait_for_function(
                "(text) => window.__statusSeen.some((t) => t.includes(text))",
                arg="| Restarting",
            )
        self.wait_idle(timeout)

    def save(self) -> None:
        """Save the notebook (File → Save)."""
        with self.step("save the notebook"):
            self.page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
