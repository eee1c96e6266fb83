"""Real front-ends in headless Debian Chromium, through `widgetspy record --web -- jupyter ...`.

Each module-scoped server is one `widgetspy record --web` (mitmdump in front,
the provisioner on every kernel). A test opens a notebook, drives a slider, then
shuts its kernel down and merges that kernel's tap files (`widgetspy merge`),
so one server serves several tests. Waits are on messages (the websocket tap
file) and DOM states, never fixed sleeps. See ../shared/docs/e2e-notes.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import nbformat
import pytest

from widgetspy.session import EventRecord, MessageRecord, read_session
from widgetspy.session.files import SessionReadError
from widgetspy.session.taps import correlate

CHROMIUM = os.environ.get("WIDGETSPY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def _skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return (f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium when run as root "
                "(apt-get install -y chromium); set WIDGETSPY_CHROMIUM to use another")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is missing (pip install -e '.[test]')"
    for tool in ("jupyter-lab", "jupyter-notebook", "mitmdump"):
        if not (Path(sys.executable).parent / tool).exists() and shutil.which(tool) is None:
            return f"{tool} is not installed (pip install -e '.[test]')"
    return None


pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
if _skip_reason():
    pytestmark.append(pytest.mark.skip(reason=_skip_reason()))

BIN = Path(sys.executable).parent
WIDGETSPY = [sys.executable, "-m", "widgetspy"]


# ---------------------------------------------------------------------------------------- server


class WebServer:
    """`widgetspy record --web -o DIR -- jupyter <app> ...` in its own process group."""

    def __init__(self, tmp: Path, app: str, extra: list[str] = ()):
        self.tmp = tmp
        self.out = tmp / "recordings"
        self.root = tmp / "notebooks"
        self.root.mkdir(parents=True)
        env = dict(os.environ)
        cfg = tmp / "jupyter"
        env.update(
            JUPYTER_CONFIG_DIR=str(cfg / "config"), JUPYTER_DATA_DIR=str(cfg / "data"),
            JUPYTER_RUNTIME_DIR=str(cfg / "runtime"), JUPYTERLAB_WORKSPACES_DIR=str(cfg / "workspaces"),
        )
        env.pop("WIDGETSPY_RECORDINGS", None)
        self.env = env
        # the news pop-up covers the page
        subprocess.run([str(BIN / "jupyter"), "labextension", "disable", "--level=user",
                        "@jupyterlab/apputils-extension:announcements"], env=env, capture_output=True)
        argv = [*WIDGETSPY, "record", "--web", "-o", str(self.out), "--",
                str(BIN / f"jupyter-{app}"), "--no-browser", "--allow-root",
                "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
                f"--ServerApp.root_dir={self.root}", *extra]
        self.log = open(tmp / "record.log", "w+")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env,
                                     start_new_session=True)
        self.url = ""
        self.output: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            m = re.search(r"open:\s+(\S+)", line)
            if m:
                self.url = m.group(1).rstrip("/")
                break
        if not self.url:
            self.proc.wait()
            self.log.seek(0)
            raise RuntimeError(f"record --web did not start: {''.join(self.output)} {self.log.read()[-2000:]}")

    def api(self, path: str, method: str = "GET") -> Any:
        req = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else None

    def kernels(self) -> set[str]:
        for _ in range(50):
            try:
                return {k["id"] for k in self.api("/api/kernels")}
            except urllib.error.HTTPError as exc:  # jupyter_server answers 500 while a kernel is half started
                if exc.code != 500:
                    raise
                time.sleep(0.1)
        return {k["id"] for k in self.api("/api/kernels")}

    def ws_records(self, kernel_id: str) -> list[Any]:
        recs: list[Any] = []
        for p in (self.out / "taps").glob(f"*-ws-{kernel_id}-*.jsonl"):
            try:
                recs.extend(read_session(p)[1])
            except SessionReadError:
                pass
        return recs

    def wait_ws(self, kernel_id: str, pred: Callable[[Any], bool], what: str, timeout: float = 30) -> Any:
        """Wait until the websocket tap has written a record that matches."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rec in self.ws_records(kernel_id):
                if pred(rec):
                    return rec
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what} on the websocket tap")

    def finish_kernel(self, kernel_id: str, out: Path) -> Path:
        """Shut the kernel down, wait for both taps to close it, merge its parts into one session."""
        self.api(f"/api/kernels/{kernel_id}", "DELETE")
        taps = self.out / "taps"
        deadline = time.monotonic() + 30
        zmq_parts: list[Path] = []
        while time.monotonic() < deadline:
            zmq_parts = [p for p in taps.glob("*.jsonl") if "-ws-" not in p.name and kernel_id[:8] in p.name]
            if zmq_parts and all(p.read_bytes().rstrip().endswith(b"}") and b'"recording_stopped"' in p.read_bytes()
                                 for p in zmq_parts):
                break
            time.sleep(0.05)
        self.wait_ws(kernel_id, lambda r: isinstance(r, EventRecord) and r.event == "ws_closed", "ws_closed")
        parts = zmq_parts + list(taps.glob(f"*-ws-{kernel_id}-*.jsonl"))
        out.mkdir(parents=True, exist_ok=True)
        res = subprocess.run([*WIDGETSPY, "merge", *map(str, parts), "-o", str(out)], capture_output=True,
                             text=True, env=self.env)
        assert res.returncode == 0, res.stderr
        merged = sorted(out.glob(f"*-{kernel_id[:8]}*.jsonl"))
        assert len(merged) == 1, res.stdout
        return merged[0]

    def stop(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        rest = self.proc.stdout.read() if self.proc.stdout else ""
        self.log.close()
        return "".join(self.output) + rest


def _server(tmp_path_factory, app: str, extra: list[str] = ()):
    server = WebServer(tmp_path_factory.mktemp(app), app, list(extra))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


# ---------------------------------------------------------------------------------------- driving

SLIDER = "import ipywidgets as w\ns = w.IntSlider(description='v')\ns"


def write_notebook(root: Path, name: str, cells: list[str]) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, root / name)
    return name


def is_update(rec: Any, direction: str, value: Any, method: str | None = None) -> bool:
    if not isinstance(rec, MessageRecord) or rec.msg.msg_type != "comm_msg" or rec.direction.value != direction:
        return False
    d = rec.msg.comm_data
    if method and d.get("method") != method:
        return False
    return isinstance(d.get("state"), dict) and d["state"].get("value") == value


class Page:
    def __init__(self, server: WebServer, browser: Any, path: str):
        self.server = server
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        before = server.kernels()
        # ?reset: a fresh JupyterLab workspace, or the notebooks of earlier tests reopen beside this one
        self.page.goto(server.url + path + ("?reset" if path.startswith("/lab/") else ""))
        self.page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=60_000)
        deadline = time.monotonic() + 30
        while not (server.kernels() - before) and time.monotonic() < deadline:
            time.sleep(0.1)
        (self.kernel_id,) = server.kernels() - before
        # the kernel websocket is up (for good: with the legacy framing forced the first, v1, socket is
        # closed at once and the page reconnects with the same session id, which must take over its ZMQ
        # identity in the proxy) when the browser's own kernel_info_request got its reply on the tap
        server.wait_ws(self.kernel_id, lambda r: isinstance(r, MessageRecord) and r.direction.value == "to_frontend"
                       and r.msg.msg_type == "kernel_info_reply", "the browser's kernel_info_reply", 30)
        self.page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000)

    def run_cell(self, index: int, done_selector: str, tries: int = 3) -> None:
        """Run cell `index` and wait for `done_selector` (re-run if the first run went nowhere)."""
        for attempt in range(tries):
            # click the cell's prompt (always visible), then run it from command mode
            self.page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputPrompt").click()
            self.page.keyboard.press("Shift+Enter")
            try:
                self.page.wait_for_selector(done_selector, timeout=20_000)
                return
            except Exception:
                if attempt == tries - 1:
                    shot = self.server.tmp / f"failed-{index}.png"
                    self.page.screenshot(path=str(shot))
                    raise

    def close(self) -> None:
        self.context.close()


def check_session(path: Path, *, expect_values: list[int]) -> dict[str, Any]:
    """The assertions every slider scenario shares; returns what later checks need."""
    header, records, warnings = read_session(path)
    assert header.taps == ["zmq", "ws"] and not warnings
    msgs = [r for r in records if isinstance(r, MessageRecord)]
    for tap in ("zmq", "ws"):
        for direction in ("to_kernel", "to_frontend"):
            assert any(r.tap == tap and r.direction.value == direction and r.msg.msg_type == "comm_msg" for r in msgs), \
                f"no {direction} comm_msg on the {tap} tap"
    # the front-end's updates appear on both taps with the same msg_id
    pairs = correlate(records)
    fe_updates = [c for c in pairs.values() if c.ws and c.ws[0].direction.value == "to_kernel"
                  and c.ws[0].msg.comm_method == "update"]
    assert fe_updates and all(c.both for c in fe_updates)
    # the value history in `widgetspy timeline`
    res = subprocess.run([*WIDGETSPY, "timeline", str(path), "--name", "IntSlider", "--key", "value"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for v in expect_values:
        assert re.search(rf"→ {v}\b", res.stdout), (v, res.stdout)
    # `widgetspy check`, the honesty bar: real use gives no warning or error finding. (What real front-ends
    # do that the protocol frowns on is known-benign and reported at info level: the page opens the
    # jupyter.widget.control comm and sends request_states before the kernel imported ipywidgets, the
    # kernel rejects the comm (WS206, WS209); jupyter_server's connect-time nudges reuse msg_ids (WS106).)
    res = subprocess.run([*WIDGETSPY, "check", str(path), "--fail-on", "warning", "--format", "json"],
                         capture_output=True, text=True)
    report = json.loads(res.stdout)
    loud = [f for f in report["findings"] if f["severity"] != "info"]
    assert res.returncode == 0 and not loud, (loud, res.stderr)
    assert {"WS601", "WS602"} <= set(report["rules"])  # the both-taps rules ran
    # `widgetspy replay` against a fresh kernel: identical
    res = subprocess.run([*WIDGETSPY, "replay", str(path)], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    events = [r for r in records if isinstance(r, EventRecord)]
    return {"records": records, "events": events, "timeline": res.stdout}


def slider_scenario(server: WebServer, browser: Any, app_path: str, key: str, presses: int, final: int,
                    tmp_path: Path) -> tuple[Path, Page]:
    name = write_notebook(server.root, f"slider-{tmp_path.name}.ipynb", [SLIDER, "s.value = 42\nprint('set', s.value)"])
    page = Page(server, browser, app_path + name)
    try:
        page.run_cell(0, ".noUi-handle")
        kid = page.kernel_id
        page.page.locator(".noUi-handle").first.focus()
        for _ in range(presses):
            page.page.keyboard.press(key)
        # the front-end throttles and coalesces: wait for the kernel's echo of the final value
        server.wait_ws(kid, lambda r: is_update(r, "to_frontend", final, "echo_update"), f"echo_update value={final}")
        page.run_cell(1, ".jp-OutputArea-output:has-text('set 42')")
        page.page.wait_for_selector(".widget-readout:has-text('42')", timeout=20_000)
        server.wait_ws(kid, lambda r: is_update(r, "to_frontend", 42), "update value=42")
    finally:
        page.close()
    return server.finish_kernel(page.kernel_id, tmp_path / "merged"), page


# ---------------------------------------------------------------------------------------- JupyterLab 4


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from _server(tmp_path_factory, "lab")


def test_lab_slider_both_taps(lab, browser, tmp_path):
    path, _ = slider_scenario(lab, browser, "/lab/tree/", "ArrowRight", 3, 3, tmp_path)
    out = check_session(path, expect_values=[3, 42])
    connected = [e for e in out["events"] if e.event == "ws_connected"]
    assert connected and connected[0].data["protocol"] == "v1.kernel.websocket.jupyter.org"
    assert all("token=" not in json.dumps(e.data) or "token=REDACTED" in json.dumps(e.data) for e in out["events"])


def test_lab_page_reload_is_a_reconnect(lab, browser, tmp_path):
    name = write_notebook(lab.root, "reload.ipynb", [SLIDER, "s.value = 7\nprint('set', s.value)"])
    page = Page(lab, browser, "/lab/tree/" + name)
    try:
        page.run_cell(0, ".noUi-handle")
        page.run_cell(1, ".jp-OutputArea-output:has-text('set 7')")
        kid = page.kernel_id
        page.page.reload()
        # the widget comes back from the kernel's state: the front-end asked with request_states
        lab.wait_ws(kid, lambda r: isinstance(r, MessageRecord) and r.msg.comm_method == "update_states",
                    "update_states after the reload")
    finally:
        page.close()
    path = lab.finish_kernel(kid, tmp_path / "merged")
    header, records, _ = read_session(path)
    connects = [r for r in records if isinstance(r, EventRecord) and r.event == "ws_connected"]
    closes = [r for r in records if isinstance(r, EventRecord) and r.event == "ws_closed"]
    assert len(connects) >= 2 and connects[-1].data["reconnect"] is True
    assert connects[-1].data["same_session"] is False  # a reload is a new client session
    assert closes and closes[0].data["code"] is not None
    res = subprocess.run([*WIDGETSPY, "check", str(path), "--format", "json"], capture_output=True, text=True)
    findings = json.loads(res.stdout)["findings"]
    reconnect = [f for f in findings if f["rule"] == "WS602"]
    assert reconnect, findings
    assert "request_states answered" in reconnect[-1]["message"], reconnect
    assert res.returncode == 0 and not [f for f in findings if f["severity"] != "info"], findings


# ---------------------------------------------------------------------------------------- Notebook 7


@pytest.fixture(scope="module")
def nb7(tmp_path_factory):
    yield from _server(tmp_path_factory, "notebook")


def test_notebook7_slider_both_taps(nb7, browser, tmp_path):
    # Notebook 7 swallows arrow keys on a focused slider (command mode): End jumps to the max
    path, _ = slider_scenario(nb7, browser, "/notebooks/", "End", 1, 100, tmp_path)
    check_session(path, expect_values=[100, 42])


# ---------------------------------------------------------------------------------------- legacy framing


@pytest.fixture(scope="module")
def lab_legacy(tmp_path_factory):
    yield from _server(tmp_path_factory, "lab", ["--ZMQChannelsWebsocketConnection.kernel_ws_protocol="])


def test_lab_legacy_protocol(lab_legacy, browser, tmp_path):
    path, _ = slider_scenario(lab_legacy, browser, "/lab/tree/", "ArrowRight", 2, 2, tmp_path)
    # the legacy fallback connects twice with one session_id: jupyter_server's connect-time nudges of the two
    # connections reuse msg_ids, one on shell and one on control (WS106 reports it at info level)
    out = check_session(path, expect_values=[2, 42])
    legacy = [e for e in out["events"] if e.event == "ws_connected" and e.data["framing"] == "legacy"]
    assert legacy, [e.data for e in out["events"] if e.event == "ws_connected"]
    ws_msgs = [r for r in out["records"] if isinstance(r, MessageRecord) and r.tap == "ws"]
    assert ws_msgs and not [r for r in out["records"] if getattr(r, "tap", None) == "ws" and hasattr(r, "reason")]


# ---------------------------------------------------------------------------------------- IOPub rate limit


@pytest.fixture(scope="module")
def lab_limited(tmp_path_factory):
    yield from _server(tmp_path_factory, "lab", ["--ServerApp.iopub_msg_rate_limit=50",
                                                 "--ServerApp.rate_limit_window=1.0"])


def test_iopub_rate_limit_drops_are_reported(lab_limited, browser, tmp_path):
    burst = "for i in range(1, 401):\n    s.value = i\nprint('burst done')"
    name = write_notebook(lab_limited.root, "burst.ipynb", [SLIDER, burst])
    page = Page(lab_limited, browser, "/lab/tree/" + name)
    try:
        page.run_cell(0, ".noUi-handle")
        page.page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-InputPrompt").click()
        page.page.keyboard.press("Shift+Enter")
        # the server tells the browser it dropped messages
        lab_limited.wait_ws(page.kernel_id, lambda r: isinstance(r, MessageRecord) and r.msg.msg_type == "stream"
                            and "rate exceeded" in str(r.msg.content.get("text")), "the rate-limit notice")
        kid = page.kernel_id
        lab_limited.wait_ws(kid, lambda r: isinstance(r, MessageRecord) and r.msg.msg_type == "execute_reply"
                            and r.msg.content.get("execution_count") == 2, "the burst's execute_reply", 60)
    finally:
        page.close()
    path = lab_limited.finish_kernel(kid, tmp_path / "merged")
    res = subprocess.run([*WIDGETSPY, "check", str(path), "--format", "json"], capture_output=True, text=True)
    findings = json.loads(res.stdout)["findings"]
    drops = [f for f in findings if f["rule"] == "WS601"]
    assert drops, findings
    assert any("never reached the browser" in f["message"] and f["model_id"] for f in drops)
