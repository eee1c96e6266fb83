"""The recording processes' malloc settings (proxy/memory.py): a recorder that
turns each big message into new big objects must not fault in fresh pages for
every one of them."""

import subprocess
import sys

import pytest

PROBE = r"""
import base64, os, resource, sys
from widgetspy.proxy.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
r, w = os.pipe()
payload = os.urandom(1 << 20)
def one_message():  # what the websocket recorder does per 1 MiB message
    os.write(w, payload[:60000])
    batch = os.read(r, 4 << 20)  # a read sized for the biggest batch, shrunk to what came
    frame = payload + batch[:10]
    line = b"".join([b'{"data":"', base64.b64encode(frame), b'"}\n'])
for _ in range(5):  # settle
    one_message()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    one_message()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    res = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(res.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_big_blocks_are_reused_not_faulted_in_again():
    default, kept = faults("default"), faults("keep")
    # glibc's default trims the heap and re-grows it for every message: hundreds of page faults each
    assert default > 200 * 100, default
    assert kept < 200, kept
