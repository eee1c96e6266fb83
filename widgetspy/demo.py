"""The demo: record a real widget session, driven the way a browser drives it.

`widgetspy demo` starts `widgetspy record --kernel python3` as a child process
(the real command, real kernel), attaches a `FrontendClient`, and plays a short
widget story: sliders in a box, a jslink, a dragged slider, a value the kernel
clamps, `request_state`, binary buffers, a comm to an unknown target, the
control comm's `request_states`, then a shutdown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .frontend import FrontendClient
from .proxy.process import RecorderProcess

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")


def play(fe: FrontendClient, say: Callable[[str], None]) -> None:
    say("create an IntSlider and a Text in an HBox, and display it")
    fe.execute(
        "import ipywidgets as W\n"
        "s = W.IntSlider(value=3, max=100, description='x')\n"
        "t = W.Text(value='hello')\n"
        "box = W.HBox([s, t])\n"
        "display(box)"
    )
    say("link a progress bar to the slider with jslink")
    fe.execute("p = W.IntProgress(max=100)\nlink = W.jslink((s, 'value'), (p, 'value'))\ndisplay(p)")
    slider = fe.find("IntSliderModel")[0]
    say("drag the slider: front-end updates 10, 20, 30, 45 (each echoed by the kernel)")
    for v in (10, 20, 30, 45):
        fe.update(slider, {"value": v})
    say("set the slider from Python: s.value = 7")
    fe.execute("s.value = 7")
    say("send 1000 to a slider whose max is 100: echo_update, then the kernel's clamped update")
    fe.update(slider, {"value": 1000})
    say("request_state of the slider (what a reloaded page asks)")
    fe.request_state(slider)
    say("an Image with binary data, then new bytes from the front-end")
    fe.execute(f"img = W.Image(value={PNG!r}, format='png')\ndisplay(img)")
    fe.update(fe.find("ImageModel")[0], {"value": PNG[::-1]})
    say("a widget that is created and closed")
    fe.execute("b = W.Button(description='bye')\nb.close()")
    say("a comm to a target the kernel does not know (it answers with comm_close)")
    fe.comm_open("no.such.target", {})
    say("the control comm: request_states, as a front-end does after a reload")
    control, _ = fe.comm_open("jupyter.widget.control", {}, metadata={"version": "1.0.0"})
    fe.comm_msg(control, {"method": "request_states"})
    say("shut the kernel down")
    fe.shutdown()


def run_demo(output: Path, kernel: str = "python3", say: Callable[[str], None] = print) -> int:
    """Record the story into `output`; returns the recorder's exit status.
    Raises RecorderStartError when the recorder cannot start."""
    with RecorderProcess(output, kernel) as rec:
        with FrontendClient(str(rec.connection_file)) as fe:
            play(fe, say)
        return rec.wait()
