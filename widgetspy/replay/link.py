"""The replay's connection to a kernel: one jupyter_client client per recorded
front-end (so stdin prompts go to the client that asked), polled together.

Messages get fresh headers and are signed with the new kernel's key by
jupyter_client's Session; that is the only way this package sends to a kernel
during replay.
"""

from __future__ import annotations

import time
from typing import Any

import zmq
from jupyter_client import BlockingKernelClient

from ..codec.zmqframes import FrameError, parse_frames
from ..message import Channel, Message
from .engine import Outgoing


class LinkError(Exception):
    pass


class KernelLink:
    def __init__(self, connection_file: str):
        self.connection_file = connection_file
        self.clients: dict[str, BlockingKernelClient] = {}
        self.poller = zmq.Poller()
        self._sockets: dict[zmq.Socket, tuple[Channel, BlockingKernelClient]] = {}
        self._primary: BlockingKernelClient | None = None

    def client(self, peer: str) -> BlockingKernelClient:
        kc = self.clients.get(peer)
        if kc is None:
            kc = BlockingKernelClient(connection_file=self.connection_file)
            kc.load_connection_file()
            primary = self._primary is None
            kc.start_channels(shell=True, iopub=primary, stdin=True, hb=False, control=True)
            channels = [(Channel.SHELL, kc.shell_channel), (Channel.STDIN, kc.stdin_channel),
                        (Channel.CONTROL, kc.control_channel)]
            if primary:
                channels.append((Channel.IOPUB, kc.iopub_channel))
                self._primary = kc
            for channel, chan in channels:
                self.poller.register(chan.socket, zmq.POLLIN)
                self._sockets[chan.socket] = (channel, kc)
            self.clients[peer] = kc
        return kc

    def warm_up(self, timeout: float) -> None:
        """Make sure IOPub is subscribed before anything is replayed: ask for
        kernel_info until its IOPub idle comes back."""
        kc = self.client("__replay__")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg_id = kc.kernel_info()
            until = min(deadline, time.monotonic() + 1.0)
            while time.monotonic() < until:
                for channel, msg in self.poll(max(0.0, until - time.monotonic())):
                    if (channel is Channel.IOPUB and msg.parent_id == msg_id
                            and msg.msg_type == "status" and msg.content.get("execution_state") == "idle"):
                        return
        raise LinkError(f"the kernel did not answer kernel_info within {timeout:.0f} s")

    def send(self, peer: str, out: Outgoing) -> dict[str, Any]:
        kc = self.client(peer)
        session = kc.session
        header = session.msg_header(out.msg_type)
        header.update(out.header_extra)
        msg = session.msg(out.msg_type, content=out.content, parent=out.parent, header=header, metadata=out.metadata)
        socket = {Channel.SHELL: kc.shell_channel, Channel.STDIN: kc.stdin_channel,
                  Channel.CONTROL: kc.control_channel}[out.channel].socket
        session.send(socket, msg, buffers=out.buffers or None)
        return msg["header"]

    def interrupt(self, peer: str) -> None:
        """An interrupt_request of our own (not a recorded step)."""
        kc = self.client(peer)
        kc.session.send(kc.control_channel.socket, kc.session.msg("interrupt_request", {}))

    def poll(self, timeout: float) -> list[tuple[Channel, Message]]:
        """Every message waiting now, or the first within `timeout` seconds."""
        out: list[tuple[Channel, Message]] = []
        ready = dict(self.poller.poll(int(timeout * 1000)))
        while ready:
            for socket in ready:
                channel, _kc = self._sockets[socket]
                while True:
                    try:
                        frames = socket.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    # Our own codec: the kernel is ours, behind our recorder, and
                    # jupyter_client's decoding spends most of its time on dates.
                    try:
                        out.append((channel, parse_frames(frames).message))
                    except FrameError:
                        continue
            ready = dict(self.poller.poll(0))
        return out

    def close(self) -> None:
        for kc in self.clients.values():
            kc.stop_channels()
        self.clients.clear()

