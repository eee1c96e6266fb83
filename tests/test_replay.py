"""`widgetspy replay`: recorded sessions played against fresh real kernels."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from nbclient import NotebookClient

from widgetspy.frontend import FrontendClient
from widgetspy.message import Direction, WIDGET_TARGET
from widgetspy.proxy.process import RecorderProcess
from widgetspy.session import EventRecord, MessageRecord, read_session

from widget_notebooks import widget_notebook

pytestmark = pytest.mark.kernel

BLOB = """
import ipywidgets as W, traitlets
class Blob(W.DOMWidget):
    _model_name = traitlets.Unicode('BlobModel').tag(sync=True)
    _model_module = traitlets.Unicode('blob').tag(sync=True)
    _model_module_version = traitlets.Unicode('1.0.0').tag(sync=True)
    data = traitlets.Dict().tag(sync=True)
    lst = traitlets.List().tag(sync=True)
b = Blob(data={'x': {'ar': b'AB', 'shape': [2]}}, lst=[b'C', 2, b'DE'])
s = W.IntSlider(value=5)
display(s)
"""

BUTTON_STATE = {
    "_model_module": "@jupyter-widgets/controls", "_model_module_version": "2.0.0", "_model_name": "ButtonModel",
    "_view_module": "@jupyter-widgets/controls", "_view_module_version": "2.0.0", "_view_name": "ButtonView",
}


def hard_story(fe: FrontendClient) -> None:
    """Front-end traffic that exercises every kind of id the replay must map."""
    fe.execute(BLOB)
    blob, slider = fe.find("BlobModel")[0], fe.find("IntSliderModel")[0]
    fe.update(blob, {"data": {"x": {"ar": b"XYZ", "shape": [3]}}})  # a nested buffer path from the front-end
    fe.update(slider, {"value": 45})
    fe.request_state(slider)
    control, _ = fe.comm_open("jupyter.widget.control", {}, metadata={"version": "1.0.0"})
    fe.comm_msg(control, {"method": "request_states"})
    button, _ = fe.comm_open(WIDGET_TARGET, {"state": BUTTON_STATE, "buffer_paths": []}, metadata={"version": "2.1.0"})
    fe.update(button, {"description": "made in the browser"})
    fe.execute("print(bytes(b.data['x']['ar']), s.value)")
    fe.execute("name = input('who? ')\nprint('hello', name)", stdin_reply="ada")
    # The cell says when its loop runs: an interrupt that lands before user code
    # (right after execute_input) can end the request with no execute_reply at all.
    msg_id = fe.kc.execute("import time\nprint('looping', flush=True)\nwhile True:\n    time.sleep(0.05)")
    deadline = time.monotonic() + 30
    while not any(m["msg_type"] == "stream" and m["parent_header"].get("msg_id") == msg_id
                  for m in fe.drain_iopub()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert fe.interrupt(msg_id).reply["content"]["ename"] == "KeyboardInterrupt"
    fe.restart()
    fe.execute("print('after restart', 'b' in dir())")


@pytest.fixture(scope="module")
def hard_session(tmp_path_factory):
    out = tmp_path_factory.mktemp("replay") / "hard.jsonl"
    with RecorderProcess(out) as rec:
        with FrontendClient(str(rec.connection_file)) as fe:
            hard_story(fe)
            fe.shutdown()
        assert rec.wait() == 0
    return out


def replay(*args, env=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "widgetspy", "replay", "-q", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def front_end_types(path):
    return [r.msg_type for r in read_session(path)[1]
            if isinstance(r, MessageRecord) and r.direction is Direction.TO_KERNEL]


def test_hard_session_replays_identically(hard_session, tmp_path):
    out = tmp_path / "replayed.jsonl"
    result = replay(hard_session, "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical" in result.stdout and "1 final shutdown" in result.stdout
    # the replayed run is a session too: every recorded front-end message was sent again
    # (kernel_info requests aside: the replay asks for its own, and drops those lost in the restart)
    recorded = Counter(t for t in front_end_types(hard_session) if t != "kernel_info_request")
    recorded["shutdown_request"] -= 1  # the final one is not replayed
    replayed = Counter(t for t in front_end_types(out) if t != "kernel_info_request")
    assert replayed == +recorded
    records = read_session(out)[1]
    assert any(isinstance(r, EventRecord) and r.event == "kernel_restarted" for r in records)
    streams = [r.msg.content["text"] for r in records if isinstance(r, MessageRecord) and r.msg_type == "stream"]
    assert "b'XYZ' 45\n" in streams and "hello ada\n" in streams and "after restart False\n" in streams


def test_a_changed_kernel_is_caught_at_the_right_seq(hard_session, tmp_path):
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-clamp.py").write_text(
        "import ipywidgets.widgets.widget_int as _wi\n"
        "def _clamp_to_40(self, proposal):\n"
        "    return max(self.min, min(proposal['value'], self.max, 40))\n"
        "_wi._BoundedInt._validate_value.func = _clamp_to_40\n"
    )
    result = replay(hard_session, env={**os.environ, "IPYTHONDIR": str(startup.parent.parent)})
    assert result.returncode == 1, result.stdout + result.stderr
    records = read_session(hard_session)[1]
    drag = next(r for r in records if isinstance(r, MessageRecord) and r.msg_type == "comm_msg"
                and r.msg.comm_method == "update" and r.msg.comm_data["state"].get("value") == 45)
    first = result.stdout.split("DIVERGED at seq ")[1]
    assert first.startswith(f"{drag.seq}, in comm_msg update IntSliderModel")
    assert "update IntSliderModel" in first and "state.value" in first
    assert "expected: <missing>" in first and "actual:   40" in first
    # the print of s.value diverges too, and is reported with its cell
    assert ('execute_request "print(bytes(b.data[\'x\'][\'ar\']), s.value)": stream stdout: '
            'expected "b\'XYZ\' 45\\n", got "b\'XYZ\' 40\\n"') in result.stdout


def test_ignore_takes_known_nondeterminism_out(hard_session, tmp_path):
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-print.py").write_text("import builtins\n_p = builtins.print\n"
                                         "builtins.print = lambda *a, **k: _p('[patched]', *a, **k)\n")
    env = {**os.environ, "IPYTHONDIR": str(startup.parent.parent)}
    assert replay(hard_session, env=env).returncode == 1
    result = replay(hard_session, "--ignore", r"re:\[patched\] ", env=env)
    assert result.returncode == 0, result.stdout


def test_until_keep_kernel_leaves_the_state_before_that_seq(hard_session):
    records = read_session(hard_session)[1]
    drag = next(r for r in records if isinstance(r, MessageRecord) and r.msg_type == "comm_msg"
                and r.msg.comm_method == "update" and r.msg.comm_data["state"].get("value") == 45)
    result = replay(hard_session, "--until", drag.seq, "--keep-kernel")
    assert result.returncode == 0, result.stdout + result.stderr
    cf = re.search(r"connection file: (\S+)", result.stdout).group(1)
    pid = int(re.search(r"kill -INT (\d+)", result.stdout).group(1))
    try:
        assert f"jupyter console --existing {cf}" in result.stdout
        with FrontendClient(cf) as fe:
            assert fe.execute("print(s.value, bytes(b.data['x']['ar']))").stdout == "5 b'XYZ'\n"
    finally:
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the kept recorder did not stop"
        time.sleep(0.05)


def test_nbclient_recording_replays_identically(tmp_path):
    rec_dir = tmp_path / "recordings"
    subprocess.run([sys.executable, "-m", "widgetspy", "kernelspec", "install", "--kernel", "python3",
                    "--name", "replay-nb", "--recordings", str(rec_dir)], check=True, capture_output=True)
    try:
        NotebookClient(widget_notebook(), kernel_name="replay-nb", timeout=60).execute()
    finally:
        subprocess.run([sys.executable, "-m", "widgetspy", "kernelspec", "remove", "replay-nb"], capture_output=True)
    (session,) = rec_dir.glob("*.jsonl")
    header = read_session(session)[0]
    assert header.kernel["name"] == "python3"
    result = replay(session)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical" in result.stdout


@pytest.mark.parametrize("pace", ["fast", "recorded"])
def test_other_paces_also_replay_the_hard_story_identically(hard_session, pace):
    result = replay(hard_session, "--pace", pace, "--timeout", "30")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def slider_session(tmp_path_factory):
    out = tmp_path_factory.mktemp("replay") / "sliders.jsonl"
    with RecorderProcess(out) as rec:
        with FrontendClient(str(rec.connection_file)) as fe:
            fe.execute("import ipywidgets as W\nsliders = [W.IntSlider(max=10**6) for _ in range(5)]")
            ids = fe.find("IntSliderModel")
            for i in range(150):
                fe.update(ids[i % 5], {"value": i})
                if i % 50 == 49:
                    fe.execute(f"for s in sliders: s.value = {i}\nprint(sum(s.value for s in sliders))")
            fe.shutdown()
        assert rec.wait() == 0
    return out


@pytest.mark.parametrize("pace", ["fast", "recorded", "idle"])
def test_every_pace_replays_a_dragged_slider_session_identically(slider_session, pace):
    result = replay(slider_session, "--pace", pace)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical" in result.stdout


# ----------------------------------------------------------------------------- bad input


def test_bad_input_is_a_one_line_error(hard_session, tmp_path):
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\x00\x01 not a session\n")
    empty = tmp_path / "no-frontend.jsonl"
    lines = hard_session.read_bytes().splitlines(keepends=True)
    empty.write_bytes(lines[0] + b"".join(l for l in lines[1:] if b'"dir":"to_kernel"' not in l))
    for args, message in [
        ((garbage,), "not a widgetspy session"),
        ((empty,), "no front-end messages to replay"),
        ((hard_session, "--kernel", "no-such-kernel"), "cannot start kernel 'no-such-kernel'"),
        ((hard_session, "--ignore", "bogus"), "--ignore 'bogus'"),
        ((tmp_path / "missing.jsonl",), "no such file"),
    ]:
        result = replay(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and result.stderr.strip().count("\n") == 0
        assert "Traceback" not in result.stderr


def test_a_truncated_session_replays_what_it_has(hard_session, tmp_path):
    cut = tmp_path / "cut.jsonl"
    data = hard_session.read_bytes()
    cut.write_bytes(data[: data.index(b"interrupt_request")])  # killed mid-line
    result = replay(cut)
    assert "truncated" in result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


def test_inspector_findings_new_in_the_replay_are_reported(hard_session, tmp_path):
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-bogus.py").write_text(
        "import ipywidgets as W\n"
        "_send_state = W.Widget.send_state\n"
        "def send_state(self, key=None):\n"
        "    _send_state(self, key)\n"
        "    self.comm.send({'method': 'frobnicate'})\n"
        "W.Widget.send_state = send_state\n"
    )
    result = replay(hard_session, env={**os.environ, "IPYTHONDIR": str(startup.parent.parent)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "inspector finding(s) in the replayed run that the recording did not have:" in result.stdout
    assert re.search(r"error\s+WS304 seq \d+ \[IntSlider [0-9a-f]{8}\]", result.stdout), result.stdout
