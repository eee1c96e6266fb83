"""`widgetspy record -- COMMAND`: every kernel the command starts is recorded."""

from __future__ import annotations

import subprocess
import sys

import pytest

from widgetspy.message import Direction
from widgetspy.session import MessageRecord, read_session

pytestmark = pytest.mark.kernel

SCRIPT = """
from jupyter_client.manager import start_new_kernel
for n in (1, 2):
    km, kc = start_new_kernel(kernel_name="python3")
    kc.execute_interactive("import ipywidgets as W\\ns = W.IntSlider(value=%d)\\nprint(s.value * 10)" % n, timeout=60)
    kc.stop_channels()
    km.shutdown_kernel()
print("script done")
"""


def test_every_kernel_a_command_starts_is_recorded(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "sessions"
    result = subprocess.run(
        [sys.executable, "-m", "widgetspy", "record", "-o", str(out), "--", sys.executable, str(script)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "10\n" in result.stdout and "20\n" in result.stdout and "script done" in result.stdout
    assert "2 session(s) recorded" in result.stdout
    sessions = sorted((read_session(p) for p in out.glob("*.jsonl")), key=lambda s: s[0].created)
    assert len(sessions) == 2
    for n, (header, records, warnings) in enumerate(sessions, start=1):
        assert header.recorder["mode"] == "provisioner" and header.kernel["name"] == "python3"
        assert header.kernel["display_name"] == "Python 3 (ipykernel)" and header.kernel["language"] == "python"
        msgs = [r for r in records if isinstance(r, MessageRecord)]
        streams = [r.msg.content["text"] for r in msgs if r.msg_type == "stream"]
        assert streams == [f"{n * 10}\n"]
        slider = [r for r in msgs if r.msg_type == "comm_open" and r.direction is Direction.TO_FRONTEND
                  and r.msg.comm_data["state"]["_model_name"] == "IntSliderModel"]
        assert slider[0].msg.comm_data["state"]["value"] == n
        assert records[-1].event == "recording_stopped" and warnings == []


def test_a_command_that_does_not_exist(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "widgetspy", "record", "-o", str(tmp_path), "--", "no-such-command-xyz"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and "cannot run no-such-command-xyz" in result.stderr
