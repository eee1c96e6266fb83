"""The wrapper kernelspec: front-ends that only know kernelspecs record without noticing."""

from __future__ import annotations

import queue
import subprocess
import sys

import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient

from widgetspy.message import Direction
from widgetspy.session import MessageRecord, read_session
from widgetspy.proxy.kernelspec import wrappers

from widget_notebooks import canonical_outputs, canonical_widget_state, widget_notebook

pytestmark = pytest.mark.kernel


def widgetspy(*args):
    return subprocess.run([sys.executable, "-m", "widgetspy", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def wrapper(tmp_path_factory):
    recordings = tmp_path_factory.mktemp("recordings")
    result = widgetspy("kernelspec", "install", "--kernel", "python3", "--name", "py-spy-test", "--recordings", str(recordings))
    assert result.returncode == 0, result.stderr
    yield recordings
    widgetspy("kernelspec", "remove", "py-spy-test")


def test_install_list_remove(wrapper):
    listed = widgetspy("kernelspec", "list")
    assert "py-spy-test  wraps python3" in listed.stdout
    assert wrappers()["py-spy-test"]["recordings"] == str(wrapper)
    again = widgetspy("kernelspec", "install", "--kernel", "py-spy-test")
    assert again.returncode == 2 and "already a widgetspy wrapper" in again.stderr
    missing = widgetspy("kernelspec", "remove", "nope")
    assert missing.returncode == 2 and "no widgetspy kernelspec named 'nope'" in missing.stderr


def test_nbclient_widget_state_is_the_same_through_the_wrapper(wrapper):
    direct = widget_notebook()
    NotebookClient(direct, kernel_name="python3", timeout=60).execute()
    proxied = widget_notebook()
    before = set(wrapper.glob("*.jsonl"))
    NotebookClient(proxied, kernel_name="py-spy-test", timeout=60).execute()
    assert canonical_widget_state(proxied) == canonical_widget_state(direct)
    assert canonical_outputs(proxied) == canonical_outputs(direct)

    (path,) = set(wrapper.glob("*.jsonl")) - before
    header, records, warnings = read_session(path)
    assert header.recorder["mode"] == "kernelspec" and header.kernel["name"] == "python3"
    codes = [r.msg.content["code"] for r in records if isinstance(r, MessageRecord) and r.msg_type == "execute_request"]
    assert [c for c in codes if c] == [cell.source for cell in proxied.cells]
    opened = [r for r in records if isinstance(r, MessageRecord) and r.msg_type == "comm_open"
              and r.direction is Direction.TO_FRONTEND]
    saved = proxied.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert set(saved) <= {r.msg.comm_id for r in opened}
    assert records[-1].event == "recording_stopped" and warnings == []


def test_signal_interrupt_and_restart_through_the_wrapper(wrapper):
    before = set(wrapper.glob("*.jsonl"))
    km = KernelManager(kernel_name="py-spy-test")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        msg_id = kc.execute("import time\nprint('looping', flush=True)\nwhile True:\n    time.sleep(0.05)")
        while True:  # wait until the loop runs (an earlier SIGINT can cost the execute_reply)
            msg = kc.get_iopub_msg(timeout=30)
            if msg["msg_type"] == "stream" and msg["parent_header"]["msg_id"] == msg_id:
                break
        km.interrupt_kernel()  # interrupt_mode signal: SIGINT to the shim, which interrupts the kernel
        reply = kc.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        km.restart_kernel()
        kc.wait_for_ready(timeout=60)
        assert kc.execute_interactive("x = 1", timeout=30)["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel()
    sessions = sorted((read_session(p) for p in set(wrapper.glob("*.jsonl")) - before), key=lambda s: s[0].created)
    assert len(sessions) == 2  # one file per kernel start
    first, second = (records for _, records, _ in sessions)
    kinds = [r.event for r in first if not isinstance(r, MessageRecord)]
    assert "kernel_interrupted" in kinds
    exited = [r for r in first if not isinstance(r, MessageRecord) and r.event == "kernel_exited"][0]
    assert exited.data["cause"] == "shutdown_request" and exited.data["exit_code"] == 0
    assert any(isinstance(r, MessageRecord) and r.msg_type == "shutdown_request" and r.msg.content["restart"]
               for r in first)
    assert any(isinstance(r, MessageRecord) and r.msg_type == "execute_request" for r in second)
