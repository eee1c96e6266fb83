"""Each bug-pattern rule (WS4xx) firing on traffic that really reproduces the
pattern with a real kernel: kernel code and front-end scripts that provoke it,
recorded through `widgetspy record`. One recording for the module; each phase
is delimited by a marker execute so a test can check that its rule fired
inside its own phase (and nowhere else).

Waits are for messages (idle, echo, a line in the session file), never sleeps
of a fixed length.
"""

from __future__ import annotations

import queue
import time
from pathlib import Path

import pytest

from widgetspy.frontend import FrontendClient
from widgetspy.inspectors import Checker, Severity
from widgetspy.proxy.process import RecorderProcess
from widgetspy.session import read_session

pytestmark = pytest.mark.kernel

SKEWED_SLIDER = {  # what an ipywidgets 7 front-end (controls 1.5.0, protocol 2.0.0) opens
    "_model_module": "@jupyter-widgets/controls", "_model_module_version": "1.5.0", "_model_name": "IntSliderModel",
    "_view_module": "@jupyter-widgets/controls", "_view_module_version": "1.5.0", "_view_name": "IntSliderView",
}

DROP_ONE_IDLE = """\
_k = get_ipython().kernel
_orig_status = _k._publish_status
def _drop_one_idle(status, channel, parent=None):
    p = parent or _k.get_parent(channel)
    if status == 'idle' and (p or {}).get('header', {}).get('msg_type') == 'comm_msg':
        del _k._publish_status  # back to the class method: only this one idle is lost
        return
    return _orig_status(status, channel, parent)
_k._publish_status = _drop_one_idle
"""


def wait_until(predicate, what: str, timeout: float = 30.0) -> None:
    """Wait for a condition that a message makes true (bounded; polls quickly)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.002)


def recorded(path: Path, msg_id: str) -> bool:
    try:
        return msg_id.encode() in path.read_bytes()
    except FileNotFoundError:
        return False


def read_iopub_until(fe: FrontendClient, match, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            msg = fe.kc.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            if time.monotonic() > deadline:
                raise TimeoutError("no matching iopub message") from None
            continue
        fe._apply(msg)
        if match(msg):
            return msg


@pytest.fixture(scope="module")
def patterns(jupyter_dirs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("check-patterns")
    out = tmp / "session.jsonl"
    flag = tmp / "flag"
    phases: dict[str, tuple[int, int]] = {}
    marks: list[tuple[str, str]] = []

    def mark(fe: FrontendClient, name: str) -> None:
        marks.append((name, fe.execute(f"# phase {name}").msg_id))

    with RecorderProcess(out) as rec:
        with FrontendClient(str(rec.connection_file), timeout=60) as fe, \
                FrontendClient(str(rec.connection_file), timeout=60) as other:
            fe.execute("import ipywidgets as W, os, threading\n"
                       "s = W.IntSlider(max=100)\nt = W.Text()\ndisplay(s, t)")
            slider, text = fe.find("IntSliderModel")[0], fe.find("TextModel")[0]

            mark(fe, "skew")  # B1: an ipywidgets 7 front-end opens a slider on an ipywidgets 8 kernel
            fe.comm_open("jupyter.widget", {"state": SKEWED_SLIDER, "buffer_paths": []},
                         metadata={"version": "2.0.0"})

            mark(fe, "lost")  # B4: an edit queued behind a running cell, kernel without echo_update
            fe.execute("import ipywidgets.widgets.widget as _ww\n_ww.JUPYTER_WIDGETS_ECHO = False")
            run = fe.kc.execute(f"while not os.path.exists({str(flag)!r}): pass\nt.value = 'I computed'")
            upd = fe.send("comm_msg", {"comm_id": text, "data": {"method": "update", "state": {"value": "bug?"},
                                                                 "buffer_paths": []}})
            wait_until(lambda: recorded(out, upd), "the front-end update in the session file")
            flag.write_text("go")
            fe.wait_idle(run)
            fe.shell_reply(run)
            fe.wait_idle(upd)
            flag.unlink()
            fe.execute("_ww.JUPYTER_WIDGETS_ECHO = True")

            mark(fe, "loop")  # B5: two tabs that each save what they receive: values ping-pong
            fe.update(slider, {"value": 10})
            for sender in (other, fe, other, fe):
                sender.drain_iopub()
                sender.update(slider, {"value": sender.models[slider]["value"]})

            mark(fe, "storm")  # B5/B9: a loop setting a trait; B12: a front-end without throttling
            fe.execute("for i in range(150):\n    s.value = i % 100")
            busy = fe.kc.execute(f"while not os.path.exists({str(flag)!r}): pass")
            ids = [fe.send("comm_msg", {"comm_id": slider, "data": {"method": "update", "state": {"value": v},
                                                                    "buffer_paths": []}}) for v in range(12)]
            wait_until(lambda: recorded(out, ids[-1]), "the last front-end update in the session file")
            flag.write_text("go")
            fe.wait_idle(ids[-1])
            fe.shell_reply(busy)
            flag.unlink()

            mark(fe, "redundant")  # B6: send_state() re-sends a 2 KiB image that did not change
            fe.execute("img = W.Image(value=bytes(2048), format='png')\ndisplay(img)\n"
                       "img.send_state('value')\nimg.send_state('value')")

            mark(fe, "leak")  # B13: re-running a cell that makes a widget
            for _ in range(3):
                fe.execute("leaky = W.IntSlider(description='leaky')\ndisplay(leaky)")

            mark(fe, "after_idle")  # B7: a thread prints after its cell is idle
            fe.execute(f"def _late():\n    while not os.path.exists({str(flag)!r}):\n        pass\n"
                       "    print('late output from a thread')\n"
                       "threading.Thread(target=_late).start()")
            flag.write_text("go")
            read_iopub_until(fe, lambda m: m["msg_type"] == "stream" and "late output" in m["content"]["text"])
            flag.unlink()

            mark(fe, "missing_idle")  # B12: the idle of one widget update is lost
            fe.execute(DROP_ONE_IDLE)
            lost = fe.send("comm_msg", {"comm_id": slider, "data": {"method": "update", "state": {"value": 5},
                                                                    "buffer_paths": []}})
            read_iopub_until(fe, lambda m: m["msg_type"] == "comm_msg"
                             and m["parent_header"].get("msg_id") == lost)
            fe.execute("x = 1")  # the kernel moves on

            mark(fe, "oversized")  # B11: a 9 MiB image
            fe.execute("big = W.Image(value=bytes(9 * 1024 * 1024), format='png')\ndisplay(big)")

            mark(fe, "end")
            fe.shutdown()
        assert rec.wait() == 0
    _header, records, warnings = read_session(out)
    assert warnings == []
    seq_of = {r.msg.msg_id: r.seq for r in records if getattr(r, "msg", None) is not None}
    bounds = [(name, seq_of[mid]) for name, mid in marks]
    for (name, start), (_next, end) in zip(bounds, bounds[1:]):
        phases[name] = (start, end)
    findings = Checker().check(records)
    return {"path": out, "records": records, "findings": findings, "phases": phases}


def fired(patterns, rule_id: str) -> list:
    return [f for f in patterns["findings"] if f.rule_id == rule_id]


def in_phase(patterns, finding, phase: str) -> bool:
    start, end = patterns["phases"][phase]
    return start <= finding.seq <= end


@pytest.mark.parametrize("rule_id, phase", [
    ("WS401", "skew"),
    ("WS402", "lost"),
    ("WS403", "loop"),
    ("WS404", "storm"),
    ("WS405", "redundant"),
    ("WS406", "leak"),
    ("WS407", "missing_idle"),
    ("WS408", "after_idle"),
    ("WS409", "lost storm"),
    ("WS410", "oversized"),
])
def test_bug_pattern_rule_fires_in_its_phase(patterns, rule_id, phase):
    found = fired(patterns, rule_id)
    assert found, f"{rule_id} did not fire"
    if rule_id == "WS406":  # judged when the kernel exits: it points at the last run of the cell
        assert all(in_phase(patterns, f, "leak") for f in found)
    else:
        assert all(any(in_phase(patterns, f, p) for p in phase.split()) for f in found), \
            [(f.seq, f.message) for f in found]


def test_pattern_details(patterns):
    (skew,) = [f for f in fired(patterns, "WS401") if "1.5.0" in f.message]
    assert "the kernel uses 2.0.0" in skew.message
    (lost,) = fired(patterns, "WS402")
    assert "value: kernel \"bug?\", front-end \"I computed\"" in lost.message and lost.model_name == "TextModel"
    queued = fired(patterns, "WS409")
    assert [f for f in queued if in_phase(patterns, f, "lost")]
    assert len([f for f in queued if in_phase(patterns, f, "storm")]) == 12
    assert all("behind execute_request" in f.message for f in queued)
    storms = fired(patterns, "WS404")
    assert {("kernel sent" in f.message) for f in storms} == {True, False}  # kernel loop and front-end flood
    (leak,) = fired(patterns, "WS406")
    assert "run 3 times" in leak.message and "2 widget(s)" in leak.message
    (missing,) = fired(patterns, "WS407")
    assert "comm_msg update" in missing.message
    (big,) = fired(patterns, "WS410")
    assert big.model_name == "ImageModel" and "9.0 MiB" in big.message


def test_no_protocol_errors_besides_the_provoked_ones(patterns):
    """The reproductions break only what they mean to break."""
    expected = {"WS401", "WS402", "WS403", "WS404", "WS405", "WS406", "WS407", "WS408", "WS409", "WS410",
                "WS318"}  # the kernel echoes to the 2.0.0 front-end of the skew phase
    other = [f for f in patterns["findings"] if f.rule_id not in expected and f.severity >= Severity.WARNING]
    assert other == [], [f.one_line() for f in other]


def test_cli_formats_and_exit_codes(patterns, tmp_path):
    import json
    import xml.etree.ElementTree as ET

    from click.testing import CliRunner

    from widgetspy.cli import cli

    path = str(patterns["path"])
    runner = CliRunner()
    res = runner.invoke(cli, ["check", path])
    assert res.exit_code == 1  # errors (WS402, WS407)
    assert "ERROR" in res.output and "WARNING" in res.output and "WS402" in res.output
    assert runner.invoke(cli, ["check", path, "--fail-on", "never"]).exit_code == 0
    res = runner.invoke(cli, ["check", path, "--select", "WS41,WS406", "--fail-on", "warning", "--format", "json"])
    assert res.exit_code == 1
    doc = json.loads(res.output)
    assert {f["rule"] for f in doc["findings"]} == {"WS410", "WS406"}
    res = runner.invoke(cli, ["check", path, "--select", "WS4", "--ignore", "WS402,WS407", "--fail-on", "error"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["check", path, "--format", "sarif"])
    sarif = json.loads(res.output)
    run = sarif["runs"][0]
    assert sarif["version"] == "2.1.0" and run["tool"]["driver"]["name"] == "widgetspy"
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    for result in run["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        assert result["locations"][0]["physicalLocation"]["region"]["startLine"] >= 2
    # the startLine is the session file line holding the offending record
    lines = Path(path).read_text().splitlines()
    lost = next(r for r in run["results"] if r["ruleId"] == "WS410")
    assert f'"seq":{lost["properties"]["seq"]},' in lines[lost["locations"][0]["physicalLocation"]["region"]["startLine"] - 1]
    res = runner.invoke(cli, ["check", path, "--format", "junit", "--fail-on", "warning"])
    suite = ET.fromstring(res.output).find("testsuite")
    assert int(suite.get("tests")) >= 30
    failed = {tc.get("name").split()[0] for tc in suite.iter("testcase") if tc.find("failure") is not None}
    assert {"WS402", "WS407", "WS410"} <= failed and int(suite.get("failures")) == len(failed)
    assert runner.invoke(cli, ["check", path, "--select", "WS999"]).exit_code == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not a session\n")
    assert runner.invoke(cli, ["check", str(bad)]).exit_code == 2


def test_record_check_prints_findings_live(jupyter_dirs, tmp_path):
    """`widgetspy record --check`: findings on stderr while recording, one line each."""
    import subprocess
    import sys

    out, conn = tmp_path / "live.jsonl", tmp_path / "kernel.json"
    proc = subprocess.Popen([sys.executable, "-m", "widgetspy", "record", "--kernel", "python3", "-o", str(out),
                             "--connection-file", str(conn), "--check"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if "connection file:" in line:
                break
        with FrontendClient(str(conn), timeout=60) as fe:
            fe.execute("import ipywidgets as W\ns = W.IntSlider()\ndisplay(s)")
            slider = fe.find("IntSliderModel")[0]
            fe.update(slider, {"value": "seven"})  # WS501 (and the kernel's TraitError)
            fe.comm_msg("no-such-comm", {"method": "update", "state": {"value": 1}, "buffer_paths": []})  # WS201
            fe.shutdown()
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("widgetspy check:")]
    assert any("WS501" in ln and "IntSlider" in ln for ln in lines), stderr
    assert any("WS201" in ln for ln in lines), stderr
    assert "error(s)" in lines[-1] and "warning(s)" in lines[-1]
    # the same findings as checking the file afterwards
    _h, records, _w = read_session(out)
    offline = {(f.rule_id, f.seq) for f in Checker().check(records)}
    live = {(ln.split()[3], int(ln.split()[5].rstrip(":"))) for ln in lines[:-1]}
    assert live == offline
