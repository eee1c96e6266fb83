"""The ZMQ man-in-the-middle: bind what the client expects, connect to the kernel,
forward every frame unchanged, and copy each message to the capture thread.

Each channel is forwarded by pyzmq's `monitored_queue`, a C loop that holds no
GIL, one thread per channel. Every forwarded message is also pushed, with a tag
naming its channel and direction, to an in-process PULL socket read by one
capture thread. The capture socket has no high-water mark, so forwarding never
waits for logging.

Client identities survive the hop: the front ROUTER hands the client's identity
frame on to the kernel, whose reply carries it back. The back shell and stdin
DEALERs share one identity, as a client's do, so the kernel's `input_request`
reaches the right client through us.
"""

from __future__ import annotations

import errno
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import zmq
from zmq.devices import monitored_queue

from ..message import Channel, Direction
from .capture import capture_tag, parse_tag

PORT_KEYS = {
    Channel.SHELL: "shell_port",
    Channel.IOPUB: "iopub_port",
    Channel.STDIN: "stdin_port",
    Channel.CONTROL: "control_port",
    Channel.HB: "hb_port",
}

CAPTURE_ENDPOINT = "inproc://widgetspy-capture"
FRONT_LINGER_MS = 500
IDLE_TICK_MS = 50  # the capture thread's wake-up when nothing arrives
MAX_BATCH = 512  # messages per capture batch ...
MAX_BATCH_BYTES = 4 << 20  # ... and bytes: a burst of 1 MiB buffers must not be encoded all at once

Batch = list[tuple[Channel, Direction, list[bytes], float]]


class ProxyError(Exception):
    """The proxy cannot start; str() is a one-line message."""


@dataclass
class _Device:
    channel: Channel
    front: zmq.Socket
    back: zmq.Socket
    mon: zmq.Socket
    thread: threading.Thread | None = None


def _addr(info: dict[str, Any], channel: Channel) -> str:
    return f"tcp://{info['ip']}:{info[PORT_KEYS[channel]]}"


class ZmqMitm:
    """Forward between the client-facing ports (`front`) and the kernel (`back`).

    `front` and `back` are connection-info dicts (ip and the five ports).
    `on_batch` is called from the capture thread with lists of
    ``(channel, direction, frames, t)``; `clock` gives t.
    """

    def __init__(
        self,
        front: dict[str, Any],
        back: dict[str, Any],
        on_batch: Callable[[Batch], None],
        clock: Callable[[], float] = time.monotonic,
    ):
        if front.get("transport", "tcp") != "tcp":
            raise ProxyError(f"transport {front.get('transport')!r} is not supported (tcp only)")
        if front.get("curve_publickey") or front.get("curve_secretkey"):
            raise ProxyError(
                "the connection file asks for CurveZMQ encryption, which widgetspy cannot record; "
                "start the kernel without transport encryption"
            )
        self.front_info = dict(front)
        self.back_info = back
        self.on_batch = on_batch
        self.clock = clock
        self.ctx = zmq.Context()
        self._devices: list[_Device] = []
        self._pull: zmq.Socket | None = None
        self._capture_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._started = False
        # capture thread progress, for settle(): busy from wake-up until the batch is written
        self._busy = False
        self._last_active = time.monotonic()
        self.capture_error: BaseException | None = None

    # ------------------------------------------------------------ set-up

    def bind(self) -> None:
        """Bind the five client-facing ports. Raises ProxyError (port in use...)."""
        self._pull = self.ctx.socket(zmq.PULL)
        self._pull.rcvhwm = 0
        self._pull.linger = 0
        self._pull.bind(CAPTURE_ENDPOINT)
        shared = f"widgetspy-{uuid.uuid4().hex[:12]}".encode()
        kinds = {
            Channel.SHELL: (zmq.ROUTER, zmq.DEALER),
            Channel.CONTROL: (zmq.ROUTER, zmq.DEALER),
            Channel.STDIN: (zmq.ROUTER, zmq.DEALER),
            Channel.HB: (zmq.ROUTER, zmq.DEALER),
            Channel.IOPUB: (zmq.XPUB, zmq.XSUB),
        }
        for channel, (front_kind, back_kind) in kinds.items():
            front = self.ctx.socket(front_kind)
            back = self.ctx.socket(back_kind)
            mon = self.ctx.socket(zmq.PUSH)
            for s in (back, mon):
                s.linger = 0
            # what the kernel said last (shutdown_reply, idle) still reaches the client
            front.linger = FRONT_LINGER_MS
            mon.sndhwm = 0
            if front_kind == zmq.ROUTER:
                # as ipykernel does: a client that connects with an identity already connected takes it
                # over (jupyter_server reconnects a page with its session id as identity, at times before
                # the old connection's sockets are closed; without this the new one is never delivered)
                front.router_handover = 1
            if channel is Channel.IOPUB:
                # The proxy never drops: only the kernel's own HWM may.
                front.sndhwm = 0
                back.rcvhwm = 0
            if channel in (Channel.SHELL, Channel.STDIN):
                back.setsockopt(zmq.IDENTITY, shared)
            elif back_kind == zmq.DEALER:
                back.setsockopt(zmq.IDENTITY, f"widgetspy-{channel.value}-{uuid.uuid4().hex[:8]}".encode())
            self._devices.append(_Device(channel, front, back, mon))
            try:
                if int(self.front_info.get(PORT_KEYS[channel]) or 0) == 0:
                    port = front.bind_to_random_port(f"tcp://{self.front_info['ip']}")
                    self.front_info[PORT_KEYS[channel]] = port
                else:
                    front.bind(_addr(self.front_info, channel))
            except zmq.ZMQError as exc:
                self.close()
                port = self.front_info[PORT_KEYS[channel]]
                if exc.errno == errno.EADDRINUSE:
                    raise ProxyError(
                        f"port {port} ({channel.value}) on {self.front_info['ip']} is already in use"
                    ) from None
                raise ProxyError(f"cannot bind {channel.value} port {port}: {exc}") from None
            mon.connect(CAPTURE_ENDPOINT)

    def start(self) -> None:
        """Connect to the kernel and start forwarding and capturing."""
        for dev in self._devices:
            dev.back.connect(_addr(self.back_info, dev.channel))
        self._capture_thread = threading.Thread(target=self._capture_loop, name="widgetspy-capture", daemon=True)
        self._capture_thread.start()
        for dev in self._devices:
            if dev.channel is Channel.IOPUB:
                # messages come in from the kernel side, subscriptions from the front
                a, b = dev.back, dev.front
                a_tag, b_tag = capture_tag(dev.channel, Direction.TO_FRONTEND), capture_tag(dev.channel, Direction.TO_KERNEL)
            else:
                a, b = dev.front, dev.back
                a_tag, b_tag = capture_tag(dev.channel, Direction.TO_KERNEL), capture_tag(dev.channel, Direction.TO_FRONTEND)
            dev.thread = threading.Thread(
                target=self._run_device, args=(dev, a, b, a_tag, b_tag), name=f"widgetspy-{dev.channel.value}", daemon=True
            )
            dev.thread.start()
        self._started = True

    # ------------------------------------------------------------ threads

    @staticmethod
    def _run_device(dev: _Device, a: zmq.Socket, b: zmq.Socket, a_tag: bytes, b_tag: bytes) -> None:
        # Signals belong to the main thread (it interrupts or stops the kernel).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD})
        try:
            monitored_queue(a, b, dev.mon, a_tag, b_tag)
        except zmq.ContextTerminated:
            pass
        finally:
            dev.front.close()
            dev.back.close(linger=0)
            dev.mon.close(linger=0)

    def _capture_loop(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD})
        pull = self._pull
        assert pull is not None
        poller = zmq.Poller()
        poller.register(pull, zmq.POLLIN)
        try:
            while True:
                stopping = self._stopping.is_set()
                if not poller.poll(IDLE_TICK_MS):
                    if stopping:
                        return  # drained: nothing arrived for a tick after stop
                    self.on_batch([])  # idle tick: lets the recorder release what it held back
                    continue
                self._busy = True
                batch: Batch = []
                nbytes = 0
                now = self.clock()
                while len(batch) < MAX_BATCH and nbytes < MAX_BATCH_BYTES:
                    try:
                        parts = pull.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    channel, direction = parse_tag(parts[0])
                    batch.append((channel, direction, parts[1:], now))
                    nbytes += sum(len(p) for p in parts)
                self.on_batch(batch)
                self._last_active = time.monotonic()
                self._busy = False
        except zmq.ContextTerminated:
            pass
        except BaseException as exc:  # surfaced by stop(); forwarding goes on regardless
            self.capture_error = exc
        finally:
            pull.close(linger=0)

    def settle(self, quiet: float = 0.02, timeout: float = 10.0) -> None:
        """Wait until the capture thread has written what it got and nothing new
        came for `quiet` seconds (or `timeout`): e.g. before recording that the
        kernel exited, so its last messages come first. A large message keeps the
        thread busy for a while; busy never counts as quiet."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self._busy or time.monotonic() - self._last_active < quiet):
            time.sleep(quiet / 4)

    # ------------------------------------------------------------ tear-down

    def stop(self) -> None:
        """Log what is still queued, then stop forwarding and close every socket."""
        self._stopping.set()
        if self._capture_thread is not None:
            self._capture_thread.join(timeout=10)
        self.close()

    def close(self) -> None:
        if not self._started:
            for dev in self._devices:
                for s in (dev.front, dev.back, dev.mon):
                    s.close(linger=0)
            if self._pull is not None and self._capture_thread is None:
                self._pull.close(linger=0)
        self.ctx.term()
        for dev in self._devices:
            if dev.thread is not None:
                dev.thread.join(timeout=5)

    @property
    def devices(self) -> Sequence[_Device]:
        return tuple(self._devices)
