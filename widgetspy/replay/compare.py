"""Compare what the kernel did for a request then (recorded) and now (replayed). Sans-IO.

Kernel messages of one request are boiled down to a `Digest`: the reply's
status, the stdin prompts, stream text per stream, the other outputs, the comms
opened (class and state), the widget state it sent (every `update` of a model
merged in order, and likewise every `echo_update`), custom messages and comm
closes. Messages may batch differently between runs (a front-end coalesces
updates, a kernel may flush differently), so digests compare by resulting
content, not message by message. Volatile text (object addresses, timings,
dates, temp paths, colour codes) is normalised first; replayed ids are mapped
back to recorded ids before anything is compared.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..buffers import BufferPathError, put_buffers
from ..codec.jsontext import dumps
from ..message import WIDGET_TARGET, Message

OUTPUT_TYPES = frozenset({"display_data", "execute_result", "update_display_data", "error", "clear_output"})

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_VOLATILE = [
    (re.compile(r"0x[0-9a-fA-F]{6,}"), "0x…"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?"), "<date>"),
    (re.compile(r"(?i)\b(wall time|cpu times|user|sys|total)\s*:\s*[\d.]+\s*[mµun]?s\b"), r"\1: <t>"),
    (re.compile(r"[\d.]+ [mµun]?s ± [\d.]+ [mµun]?s per loop[^\n]*"), "<timeit>"),
    (re.compile(r"/tmp/ipykernel_\d+/\d+\.py"), "/tmp/ipykernel_N/N.py"),
]


def normalize_text(text: str) -> str:
    text = _ANSI.sub("", text)
    for pattern, repl in _VOLATILE:
        text = pattern.sub(repl, text)
    return text


def _normalize_strings(value: Any, extra: list[re.Pattern[str]]) -> Any:
    if isinstance(value, str):
        text = normalize_text(value)
        for pattern in extra:
            text = pattern.sub("", text)
        return text
    if isinstance(value, dict):
        return {k: _normalize_strings(v, extra) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize_strings(v, extra) for v in value]
    return value


# ---------------------------------------------------------------------- ignores


@dataclass
class Ignores:
    """What `--ignore` took out of the comparison.

    `state.KEY` drops a widget state key everywhere; a category name (`stream`,
    `display`, `error`, `reply`, `stdin`, `echo`, `custom`, `close`, `open`)
    drops that whole part; `re:REGEX` deletes matches from output text.
    """

    state_keys: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)
    patterns: list[re.Pattern[str]] = field(default_factory=list)

    CATEGORIES = frozenset({"stream", "display", "error", "reply", "stdin", "echo", "custom", "close", "open", "state"})

    @classmethod
    def parse(cls, specs: Iterable[str]) -> "Ignores":
        out = cls()
        for spec in specs:
            if spec.startswith("state."):
                out.state_keys.add(spec[len("state."):])
            elif spec.startswith("re:"):
                try:
                    out.patterns.append(re.compile(spec[3:], re.MULTILINE))
                except re.error as exc:
                    raise ValueError(f"--ignore {spec!r}: bad regex ({exc})") from None
            elif spec in cls.CATEGORIES:
                out.categories.add(spec)
            else:
                raise ValueError(
                    f"--ignore {spec!r}: use state.KEY, re:REGEX or one of {', '.join(sorted(cls.CATEGORIES))}"
                )
        return out


# ---------------------------------------------------------------------- digests


@dataclass
class Digest:
    reply: dict[str, Any] | None = None
    stdin: list[str] = field(default_factory=list)
    streams: dict[str, str] = field(default_factory=dict)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    opens: dict[str, dict[str, Any]] = field(default_factory=dict)  # comm id -> {target, model, state}
    states: dict[str, dict[str, Any]] = field(default_factory=dict)  # comm id -> merged `update` state
    echoes: dict[str, dict[str, Any]] = field(default_factory=dict)  # comm id -> merged `echo_update` state
    custom: dict[str, list[Any]] = field(default_factory=dict)
    closes: list[str] = field(default_factory=list)
    seqs: dict[str, int] = field(default_factory=dict)  # where (field path) -> recorded seq, for reporting
    models: dict[str, str] = field(default_factory=dict)  # comm id -> model class, for reporting


def buffer_token(buf: bytes) -> str:
    return f"<{len(buf)} bytes sha256:{hashlib.sha256(buf).hexdigest()[:12]}>"


def _with_buffers(data: dict[str, Any], key: str, msg: Message) -> dict[str, Any]:
    state = data.get(key)
    if not isinstance(state, dict):
        return {}
    paths = data.get("buffer_paths") or []
    tokens = [buffer_token(b) for b in msg.buffers]
    try:
        return put_buffers(state, paths, tokens)  # type: ignore[arg-type]
    except BufferPathError:
        return dict(state)


def digest(messages: Iterable[tuple[int | None, Message]], models: dict[str, str]) -> Digest:
    """Boil a request's kernel messages down. `messages` are (recorded seq or None,
    message with recorded ids); `models` (comm id -> class) names comms opened
    by earlier requests and learns those opened here."""
    d = Digest()
    for seq, msg in messages:
        t = msg.msg_type
        content = msg.content if isinstance(msg.content, dict) else {}
        if t.endswith("_reply"):
            reply = {"msg_type": t, "status": content.get("status")}
            if content.get("status") == "error":
                reply["ename"], reply["evalue"] = content.get("ename"), normalize_text(str(content.get("evalue", "")))
            if t == "comm_info_reply" and isinstance(content.get("comms"), dict):
                reply["comms"] = sorted(content["comms"])
            d.reply = reply
            _at(d, "reply", seq)
        elif t == "input_request":
            d.stdin.append(str(content.get("prompt", "")))
            _at(d, f"stdin[{len(d.stdin) - 1}]", seq)
        elif t == "stream":
            name = str(content.get("name", "stdout"))
            d.streams[name] = d.streams.get(name, "") + str(content.get("text", ""))
            _at(d, f"stream.{name}", seq)
        elif t in OUTPUT_TYPES:
            entry = {"msg_type": t, **{k: v for k, v in content.items() if k not in ("execution_count", "transient")}}
            if t == "error" and content.get("ename") == "KeyboardInterrupt":
                entry.pop("traceback", None)  # where an interrupt lands is timing, not behaviour
            d.outputs.append(_normalize_strings(entry, []))
            _at(d, f"outputs[{len(d.outputs) - 1}]", seq)
        elif t == "comm_open":
            cid = str(msg.comm_id)
            state = _with_buffers(msg.comm_data, "state", msg)
            d.opens[cid] = {"target": content.get("target_name"), "model": state.get("_model_name"), "state": state}
            if content.get("target_name") == WIDGET_TARGET:
                models[cid] = str(state.get("_model_name"))
            _at(d, f"open.{cid}", seq)
        elif t == "comm_msg":
            cid = str(msg.comm_id)
            method = msg.comm_method
            if method in ("update", "echo_update"):
                target = d.states if method == "update" else d.echoes
                state = _with_buffers(msg.comm_data, "state", msg)
                target.setdefault(cid, {}).update(state)
                for key in state:  # the message that set the value the request ended with
                    _at(d, f"{method}.{cid}.{key}", seq, last=True)
            elif method == "update_states":
                states = msg.comm_data.get("states")
                d.states.setdefault(cid, {}).update({"update_states": sorted(states) if isinstance(states, dict) else states})
                _at(d, f"update.{cid}.update_states", seq)
            else:
                d.custom.setdefault(cid, []).append(
                    {"method": method, "content": msg.comm_data.get("content"),
                     "buffers": [buffer_token(b) for b in msg.buffers]}
                )
                _at(d, f"custom.{cid}", seq)
        elif t == "comm_close":
            d.closes.append(str(msg.comm_id))
            _at(d, f"close.{msg.comm_id}", seq)
    d.models = models
    return d


def _at(d: Digest, where: str, seq: int | None, last: bool = False) -> None:
    if seq is not None:
        if last:
            d.seqs[where] = seq
        else:
            d.seqs.setdefault(where, seq)


# ---------------------------------------------------------------------- differences


@dataclass
class Divergence:
    seq: int  # recorded seq where it shows (the expected message, or the request)
    request_seq: int
    request: str  # e.g. execute_request "s.value = 42"
    where: str  # field path, e.g. update IntSliderModel 8ed913c7 state.value
    expected: Any
    actual: Any
    msg_type: str = ""  # the kind of message it is about (for near misses)
    near: list[str] = field(default_factory=list)  # nearest recorded messages, when nothing matches

    def short(self) -> str:
        return f"{self.where}: expected {show_value(self.expected)}, got {show_value(self.actual)}"


MISSING = "<missing>"


def divergence_lines(divergences: list[Divergence], limit: int = 50) -> list[str]:
    """The report under the "DIVERGED at seq ..." header: the first divergence in
    full (field, expected, actual, nearest recorded messages), then one line each."""
    first = divergences[0]
    lines = [f"  {first.where}",
             f"    expected: {show_value(first.expected, 400)}",
             f"    actual:   {show_value(first.actual, 400)}"]
    if first.near:
        lines.append("  nearest recorded messages:")
        lines.extend(f"    {line}" for line in first.near)
    requests = len({d.request_seq for d in divergences})
    lines.append(f"{len(divergences)} divergence(s) in {requests} request(s):")
    lines.extend(f"  @{d.seq} {d.request}: {d.short()}" for d in divergences[:limit])
    if len(divergences) > limit:
        lines.append(f"  … and {len(divergences) - limit} more")
    return lines


def show_value(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) and value == MISSING else dumps(value).decode("utf-8", "replace")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def diff_digests(expected: Digest, actual: Digest, request_seq: int, request: str, ignores: Ignores) -> list[Divergence]:
    out: list[Divergence] = []
    skip = ignores.categories

    def add(where: str, seq_key: str | None, exp: Any, act: Any, msg_type: str = "") -> None:
        seq = expected.seqs.get(seq_key or "", request_seq) if seq_key else request_seq
        out.append(Divergence(seq, request_seq, request, where, exp, act, msg_type))

    def model(cid: str) -> str:
        name = expected.models.get(cid) or actual.models.get(cid) or "comm"
        return f"{name} {cid[:8]}"

    if "reply" not in skip and expected.reply != actual.reply:
        for key in sorted(set(expected.reply or {}) | set(actual.reply or {})):
            e = (expected.reply or {}).get(key, MISSING)
            a = (actual.reply or {}).get(key, MISSING)
            if e != a:
                add(f"reply.{key}", "reply", e, a)
    if "stdin" not in skip and expected.stdin != actual.stdin:
        add("stdin prompts", "stdin[0]", expected.stdin, actual.stdin)
    if "stream" not in skip:
        for name in sorted(set(expected.streams) | set(actual.streams)):
            e = _clean(expected.streams.get(name), ignores)
            a = _clean(actual.streams.get(name), ignores)
            if e != a:
                add(f"stream {name}", f"stream.{name}", e if e is not None else MISSING, a if a is not None else MISSING,
                    "stream")
    if "display" not in skip or "error" not in skip:
        e_out = [_normalize_strings(o, ignores.patterns) for o in expected.outputs if _output_kept(o, skip)]
        a_out = [_normalize_strings(o, ignores.patterns) for o in actual.outputs if _output_kept(o, skip)]
        for i in range(max(len(e_out), len(a_out))):
            e = e_out[i] if i < len(e_out) else MISSING
            a = a_out[i] if i < len(a_out) else MISSING
            if e != a:
                if e is MISSING:  # a whole output the recording did not have
                    add(f"output[{i}]", None, MISSING, a, str(a.get("msg_type", "")))  # type: ignore[union-attr]
                    continue
                for path, ev, av in field_diffs(e, a, f"output[{i}]"):
                    add(path, f"outputs[{i}]", ev, av)
    if "open" not in skip:
        for cid in list(expected.opens) + [c for c in actual.opens if c not in expected.opens]:
            e, a = expected.opens.get(cid), actual.opens.get(cid)
            if e is None or a is None:
                label = (e or a or {}).get("model") or (e or a or {}).get("target")
                add(f"comm_open {label} {cid[:8]}", f"open.{cid}", "opened" if e else MISSING,
                    a if a else MISSING, "comm_open")
                continue
            if "state" in skip:
                continue
            for path, ev, av in field_diffs(_without(e["state"], ignores), _without(a["state"], ignores), "state"):
                add(f"comm_open {model(cid)} {path}", f"open.{cid}", ev, av)
    for method, e_bucket, a_bucket, cat in (("update", expected.states, actual.states, "state"),
                                            ("echo_update", expected.echoes, actual.echoes, "echo")):
        if cat in skip:
            continue
        for cid in sorted(set(e_bucket) | set(a_bucket)):
            e_state, a_state = _without(e_bucket.get(cid, {}), ignores), _without(a_bucket.get(cid, {}), ignores)
            for key in sorted(set(e_state) | set(a_state)):
                ev, av = e_state.get(key, MISSING), a_state.get(key, MISSING)
                if ev != av:
                    add(f"{method} {model(cid)} state.{key}", f"{method}.{cid}.{key}", ev, av)
    if "custom" not in skip:
        for cid in sorted(set(expected.custom) | set(actual.custom)):
            ev, av = expected.custom.get(cid, MISSING), actual.custom.get(cid, MISSING)
            if ev != av:
                add(f"custom {model(cid)}", f"custom.{cid}", ev, av)
    if "close" not in skip and sorted(expected.closes) != sorted(actual.closes):
        add("comm_close", None, sorted(expected.closes), sorted(actual.closes))
    out.sort(key=lambda dv: dv.seq)
    return out


def _without(state: dict[str, Any], ignores: Ignores) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k not in ignores.state_keys} if ignores.state_keys else state


def _clean(text: str | None, ignores: Ignores) -> str | None:
    if text is None:
        return None
    text = normalize_text(text)
    for pattern in ignores.patterns:
        text = pattern.sub("", text)
    return text


def _output_kept(output: dict[str, Any], skip: set[str]) -> bool:
    is_error = output.get("msg_type") == "error"
    return ("error" not in skip) if is_error else ("display" not in skip)


def field_diffs(e: Any, a: Any, path: str) -> list[tuple[str, Any, Any]]:
    """Leaf-level differences between two JSON values, with dotted paths."""
    if isinstance(e, dict) and isinstance(a, dict):
        out = []
        for key in list(e) + [k for k in a if k not in e]:
            out.extend(field_diffs(e.get(key, MISSING), a.get(key, MISSING), f"{path}.{key}"))
        return out
    if isinstance(e, list) and isinstance(a, list) and len(e) == len(a):
        out = []
        for i, (x, y) in enumerate(zip(e, a)):
            out.extend(field_diffs(x, y, f"{path}[{i}]"))
        return out
    return [] if e == a else [(path, e, a)]


def near_misses(msg_type: str, value: Any, candidates: Iterable[tuple[int, Message]], limit: int = 3) -> list[str]:
    """The recorded messages of `msg_type` most like `value` (something the replay
    produced that the recording did not have), best first."""
    target = dumps(_normalize_strings(value, [])).decode("utf-8", "replace")[:2000]
    scored = []
    for seq, msg in candidates:
        if msg.msg_type != msg_type:
            continue
        text = dumps(_normalize_strings(msg.content, [])).decode("utf-8", "replace")
        ratio = difflib.SequenceMatcher(None, target, text[:2000]).ratio()
        scored.append((ratio, seq, text))
    scored.sort(key=lambda x: (-x[0], x[1]))
    return [f"@{seq} ({ratio:.0%} alike) {msg_type} {text[:100]}{'…' if len(text) > 100 else ''}"
            for ratio, seq, text in scored[:limit]]
