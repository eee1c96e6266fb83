"""Record the sample sessions in recordings/ from real widgets on a real kernel.

    make recordings                      # or: .venv/bin/python recordings/make_recordings.py [NAME ...]

Each story below drives a fresh ipykernel through `widgetspy record` with the
front-end driver a test gets from the `widgetspy` fixture
(widgetspy.harness.WidgetSession), and overwrites recordings/NAME.jsonl. What
each one shows, and the rule that flags the bug-pattern ones, is in
recordings/README.md. Waits are for messages (idle, replies), never sleeps.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from widgetspy.harness import WidgetSession

HERE = Path(__file__).resolve().parent


def core_widgets(ws: WidgetSession) -> None:
    ws.execute(
        "import ipywidgets as W\n"
        "s = W.IntSlider(value=3, max=10, description='n')\n"
        "t = W.Text(value='hi')\n"
        "c = W.Checkbox(value=False, description='on')\n"
        "d = W.Dropdown(options=['a', 'b', 'c'], value='a')\n"
        "W.dlink((s, 'value'), (t, 'value'), transform=lambda v: f'n={v}')\n"
        "box = W.VBox([s, W.HBox([t, c]), d])\n"
        "display(box)"
    )
    ws.update(ws.widget("IntSlider"), value=7)  # echo_update, then the kernel's dlink updates the Text
    ws.update(ws.widget("IntSlider"), value=42)  # over max: echo, then the kernel's clamped value
    ws.update(ws.widget("Checkbox"), value=True)
    ws.update(ws.widget("Dropdown"), index=2)
    ws.request_state(ws.widget("VBox"))  # what a reloaded page asks
    ws.execute("print(s.value, repr(t.value), c.value, d.value)")


def output_capture(ws: WidgetSession) -> None:
    ws.execute(
        "import ipywidgets as W\n"
        "out = W.Output()\n"
        "b = W.Button(description='go')\n"
        "clicks = []\n"
        "def on_click(_):\n"
        "    clicks.append(1)\n"
        "    with out:\n"
        "        print('clicked', len(clicks))\n"
        "b.on_click(on_click)\n"
        "display(b, out)"
    )
    button = ws.widget("Button")
    ws.click(button)  # the print's stream is parented to the click's comm_msg; Output.msg_id routes it
    ws.click(button)
    ws.execute("with out:\n    print('from the cell')")
    ws.execute("out.clear_output()")


def binary_buffers(ws: WidgetSession) -> None:
    ws.execute(
        "import ipywidgets as W\n"
        "img = W.Image(value=bytes(range(32)), format='png', width=8)\n"
        "display(img)"
    )
    img = ws.widget("Image")
    ws.update(img, value=b"\x89PNG\r\n\x1a\n" + bytes(24))  # bytes from the front-end go as a buffer
    ws.execute("print(len(img.value), img.value[:4])")
    ws.execute("img.value = bytes(reversed(range(16)))")  # and from the kernel
    ws.request_state(img)


def custom_widget(ws: WidgetSession) -> None:
    ws.execute(
        "import ipywidgets as W, traitlets\n"
        "class Counter(W.DOMWidget):\n"
        "    _model_name = traitlets.Unicode('CounterModel').tag(sync=True)\n"
        "    _model_module = traitlets.Unicode('counter-widget').tag(sync=True)\n"
        "    _model_module_version = traitlets.Unicode('0.1.0').tag(sync=True)\n"
        "    _view_name = traitlets.Unicode('CounterView').tag(sync=True)\n"
        "    _view_module = traitlets.Unicode('counter-widget').tag(sync=True)\n"
        "    _view_module_version = traitlets.Unicode('0.1.0').tag(sync=True)\n"
        "    count = traitlets.Int(0).tag(sync=True)\n"
        "    history = traitlets.List().tag(sync=True)\n"
        "    def __init__(self, **kw):\n"
        "        super().__init__(**kw)\n"
        "        self.on_msg(self._on_custom)\n"
        "    def _on_custom(self, _, content, buffers):\n"
        "        if content.get('action') == 'inc':\n"
        "            self.count += content.get('by', 1)\n"
        "            self.history = self.history + [self.count]\n"
        "        self.send({'ack': self.count, 'buffers_seen': len(buffers)})\n"
        "c = Counter()\n"
        "display(c)"
    )
    counter = ws.widget("CounterModel")
    ws.custom(counter, {"action": "inc", "by": 2})
    ws.custom(counter, {"action": "inc"}, buffers=[b"\x00\x01\x02"])
    ws.update(counter, count=10)
    ws.execute("c.send({'hello': 'from python'}, buffers=[b'\\xff\\xfe'])\nprint(c.count, c.history)")


SKEWED_SLIDER = {  # what an ipywidgets 7 front-end (controls 1.5.0, protocol 2.0.0) opens
    "_model_module": "@jupyter-widgets/controls", "_model_module_version": "1.5.0", "_model_name": "IntSliderModel",
    "_view_module": "@jupyter-widgets/controls", "_view_module_version": "1.5.0", "_view_name": "IntSliderView",
}


def bug_version_skew(ws: WidgetSession) -> None:
    ws.execute("import ipywidgets as W\ns = W.IntSlider()\ndisplay(s)")  # the kernel speaks controls 2.0.0
    ws.comm_open("jupyter.widget", {"state": {**SKEWED_SLIDER, "value": 4}, "buffer_paths": []},
                 metadata={"version": "2.0.0"})


def bug_update_storm(ws: WidgetSession) -> None:
    ws.execute("import ipywidgets as W\ns = W.IntSlider(max=200)\ndisplay(s)")
    ws.execute("for i in range(110):\n    s.value = i")  # one update message per step


def bug_redundant_resend(ws: WidgetSession) -> None:
    ws.execute("import ipywidgets as W\nimg = W.Image(value=bytes(1536), format='png')\ndisplay(img)\n"
               "img.send_state('value')\nimg.send_state('value')")  # the same 1.5 KiB again, twice


def bug_comm_leak(ws: WidgetSession) -> None:
    ws.execute("import ipywidgets as W")
    for _ in range(3):  # re-running a cell that makes a widget: the old ones stay open
        ws.execute("leaky = W.IntSlider(description='leaky')\ndisplay(leaky)")


STORIES: dict[str, Callable[[WidgetSession], None]] = {
    f.__name__: f for f in (core_widgets, output_capture, binary_buffers, custom_widget,
                            bug_version_skew, bug_update_storm, bug_redundant_resend, bug_comm_leak)
}


def record(name: str) -> Path:
    out = HERE / f"{name}.jsonl"
    tmp = out.with_name(out.name + ".new")
    with WidgetSession(tmp) as ws:
        STORIES[name](ws)
    tmp.replace(out)
    return out


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in STORIES]
    if unknown:
        print(f"unknown: {', '.join(unknown)}; known: {', '.join(STORIES)}", file=sys.stderr)
        return 2
    for name in names or list(STORIES):
        path = record(name)
        print(f"{path.relative_to(HERE.parent)}  {path.stat().st_size / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
