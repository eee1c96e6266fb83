"""Kernel websocket traffic -> session records, one session per kernel. Sans-IO.

The mitmproxy addon (`ws_addon.py`) hands over what it sees: a kernel channel
websocket opened (path, negotiated subprotocol), each message (direction, text
or binary, payload), a close (code, reason, who). `WsCapture` routes by the
kernel id in the path, decodes with `codec.wsframes` by the connection's
subprotocol, and returns numbered records for that kernel's session: messages
(`tap: "ws"`, `peer`: the client's `session_id`), `ws_*` events for connects,
reconnects and closes, and unparsed records for frames that do not decode (they
were forwarded all the same). It never sees sockets, flows or files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import parse_qs, urlsplit

from ..codec.wsframes import V1_PROTOCOL, WsFrameError, decode, preview
from ..message import Channel, Direction
from ..session.records import EventRecord, MessageRecord, Record, UnparsedRecord

TAP = "ws"
# /<base_url>/api/kernels/<kernel id>/channels[?session_id=...&token=...]
CHANNELS_PATH = re.compile(r"/api/kernels/([^/?#]+)/channels/?(?:[?#]|$)")
_SECRET_QUERY = re.compile(r"(?i)([?&;](?:token|_xsrf|access_token)=)[^&#;]*")

WS_CONNECTED = "ws_connected"
WS_CLOSED = "ws_closed"
WS_REFUSED = "ws_refused"
WS_RECORDING_STOPPED = "ws_recording_stopped"


def kernel_id_from_path(path: str) -> str | None:
    """The kernel id of a kernel channels websocket path, else None."""
    m = CHANNELS_PATH.search(path)
    return m.group(1) if m else None


def redact(path: str) -> str:
    """A URL path with query secrets (token=, _xsrf=) replaced by REDACTED."""
    return _SECRET_QUERY.sub(r"\1REDACTED", path)


def redact_url(url: str) -> str:
    """An upstream URL without user:password@ and with query secrets redacted."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        url = parts._replace(netloc="REDACTED@" + parts.netloc.rpartition("@")[2]).geturl()
    return redact(url)


MIN_SECRET = 8  # shorter values are not taken for secrets (they would redact common words)


def request_secrets(path: str, headers: Iterable[tuple[str, str]]) -> list[str]:
    """The credentials an HTTP request carries: ``token=``/``_xsrf=``/``access_token=`` query values,
    the credential of ``Authorization: token|bearer|basic X``, every cookie value. The websocket tap
    redacts them wherever they would otherwise be written."""
    out: list[str] = []
    query = urlsplit(path).query
    if query:
        for name, values in parse_qs(query).items():
            if name.lower() in ("token", "_xsrf", "access_token"):
                out.extend(values)
    for name, value in headers:
        name = name.lower()
        if name == "authorization":
            scheme, _, cred = value.strip().partition(" ")
            out.append(cred.strip() if cred else scheme)
        elif name == "cookie":
            for pair in value.split(";"):
                out.append(pair.partition("=")[2].strip().strip('"'))
    return [s for s in dict.fromkeys(out) if len(s) >= MIN_SECRET]


def session_id_from_path(path: str) -> str | None:
    values = parse_qs(urlsplit(path).query).get("session_id")
    return values[0] if values else None


@dataclass
class Connection:
    index: int  # 1, 2, ... per kernel
    session_id: str | None
    protocol: str | None
    opened_t: float
    counts: dict[str, int] = field(default_factory=lambda: {"to_kernel": 0, "to_frontend": 0, "unparsed": 0})


class KernelWs:
    """The websocket records of one kernel's session."""

    def __init__(self, kernel_id: str) -> None:
        self.kernel_id = kernel_id
        self._seq = 0
        self.connections = 0
        self.last_session_id: str | None = None
        self.message_count = 0
        self.unparsed_count = 0

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def event(self, name: str, t: float, **data: Any) -> EventRecord:
        return EventRecord(self._next(), t, name, data)


class WsCapture:
    def __init__(self) -> None:
        self.kernels: dict[str, KernelWs] = {}
        self.conns: dict[str, tuple[KernelWs, Connection]] = {}  # connection key (flow id) -> ...
        self.other_ws_messages = 0

    def kernel(self, kernel_id: str) -> KernelWs:
        k = self.kernels.get(kernel_id)
        if k is None:
            k = self.kernels[kernel_id] = KernelWs(kernel_id)
        return k

    def opened(self, key: str, path: str, protocol: str | None, t: float) -> tuple[KernelWs, list[Record]] | None:
        """A websocket is up. None when it is not a kernel channels socket (not recorded)."""
        kid = kernel_id_from_path(path)
        if kid is None:
            return None
        k = self.kernel(kid)
        k.connections += 1
        sid = session_id_from_path(path)
        conn = Connection(k.connections, sid, protocol or None, t)
        self.conns[key] = (k, conn)
        previous = k.last_session_id
        k.last_session_id = sid
        data: dict[str, Any] = {
            "conn": conn.index,
            "session_id": sid,
            "protocol": protocol or None,
            "framing": "v1" if protocol == V1_PROTOCOL else ("legacy" if not protocol else "unknown"),
            "path": redact(path),
            "reconnect": conn.index > 1,
        }
        if conn.index > 1:
            data["previous_session_id"] = previous
            data["same_session"] = previous == sid
        return k, [k.event(WS_CONNECTED, t, **data)]

    def refused(self, path: str, status: int, t: float) -> tuple[KernelWs, list[Record]] | None:
        """The upgrade of a kernel channels socket was answered with `status`, not 101."""
        kid = kernel_id_from_path(path)
        if kid is None:
            return None
        k = self.kernel(kid)
        return k, [k.event(WS_REFUSED, t, status=status, path=redact(path))]

    def message(self, key: str, from_client: bool, payload: bytes | str, is_text: bool, t: float) -> tuple[KernelWs, list[Record]] | None:
        """One websocket message; None when the socket is not recorded."""
        found = self.conns.get(key)
        if found is None:
            self.other_ws_messages += 1
            return None
        k, conn = found
        direction = Direction.TO_KERNEL if from_client else Direction.TO_FRONTEND
        size = len(payload.encode("utf-8")) if is_text and isinstance(payload, str) else len(payload)
        try:
            ws = decode(payload, is_text, conn.protocol)
        except WsFrameError as exc:
            k.unparsed_count += 1
            conn.counts["unparsed"] += 1
            channel = Channel.SHELL if from_client else Channel.IOPUB
            return k, [UnparsedRecord(k._next(), t, TAP, direction, channel, str(exc), preview(payload), 1, size)]
        k.message_count += 1
        conn.counts[direction.value] += 1
        return k, [
            MessageRecord(
                seq=k._next(),
                t=t,
                tap=TAP,
                direction=direction,
                channel=ws.channel,
                msg=ws.message,
                frames=1,
                size=size,
                peer=conn.session_id,
                strict_json=ws.strict_json,
            )
        ]

    def closed(self, key: str, code: int | None, reason: str | None, closed_by: str | None, t: float) -> tuple[KernelWs, list[Record]] | None:
        found = self.conns.pop(key, None)
        if found is None:
            return None
        k, conn = found
        return k, [
            k.event(
                WS_CLOSED,
                t,
                conn=conn.index,
                session_id=conn.session_id,
                code=code,
                reason=reason or "",
                closed_by=closed_by,
                duration=round(t - conn.opened_t, 6),
                **conn.counts,
            )
        ]

    def stopped(self, k: KernelWs, t: float) -> list[Record]:
        return [
            k.event(
                WS_RECORDING_STOPPED,
                t,
                messages=k.message_count,
                unparsed=k.unparsed_count,
                connections=k.connections,
            )
        ]
