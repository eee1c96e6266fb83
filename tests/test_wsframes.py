"""The kernel websocket framings: round trips, the documented byte layouts, and malformed frames."""

from __future__ import annotations

import json
import re
import struct

import pytest

from widgetspy.codec.wsframes import (
    V1_PROTOCOL,
    WsFrameError,
    decode,
    encode,
    encode_legacy_binary,
    encode_v1,
    framing_name,
    preview,
)
from widgetspy.message import Channel, Message


def _msg(buffers=()):
    return Message(
        header={"msg_id": "m1", "msg_type": "comm_msg", "session": "s", "username": "u", "date": "2026-01-01T00:00:00Z", "version": "5.4"},
        parent_header={"msg_id": "p0", "msg_type": "execute_request"},
        metadata={},
        content={"comm_id": "c1", "data": {"method": "update", "state": {"value": 3}, "buffer_paths": []}},
        buffers=list(buffers),
    )


@pytest.mark.parametrize("protocol", [V1_PROTOCOL, None])
@pytest.mark.parametrize("buffers", [(), (b"\x01\x02\x03",), (b"", b"abc", b"\x00" * 1000)])
@pytest.mark.parametrize("channel", ["shell", "iopub", "control", "stdin"])
def test_round_trip(protocol, buffers, channel):
    msg = _msg(buffers)
    payload, is_text = encode(msg, channel, protocol, server=True)
    assert is_text == (protocol is None and not buffers)
    got = decode(payload, is_text, protocol)
    assert got.channel is Channel(channel)
    assert got.message.header == msg.header
    assert got.message.parent_header == msg.parent_header
    assert got.message.content == msg.content
    assert got.message.buffers == list(buffers)
    assert got.framing == ("v1" if protocol else ("text" if is_text else "binary"))
    assert got.strict_json


def test_v1_layout_matches_the_protocol_notes():
    # 6 offsets without buffers, offsets[0] = 8*(6+1) = 56, channel bytes 56..61 for "iopub"
    frame = encode_v1(_msg(), "iopub")
    n, *offsets = struct.unpack_from("<7Q", frame)
    assert n == 6 and offsets[0] == 56 and offsets[1] == 61 and offsets[-1] == len(frame)
    assert frame[56:61] == b"iopub"
    # one buffer: 7 offsets, offsets[0] = 64
    frame = encode_v1(_msg([b"xyz"]), "shell")
    n, first = struct.unpack_from("<2Q", frame)
    assert (n, first) == (7, 64) and frame.endswith(b"xyz")


def test_legacy_binary_layout_is_u32_big_endian():
    frame = encode_legacy_binary({"header": {"msg_id": "a"}, "channel": "iopub"}, [b"\x01\x02\x03"])
    nbufs, off0, off1 = struct.unpack_from(">3I", frame)
    assert (nbufs, off0) == (2, 12)
    assert json.loads(frame[off0:off1]) == {"header": {"msg_id": "a"}, "channel": "iopub"}
    assert frame[off1:] == b"\x01\x02\x03"


def test_legacy_text_extra_server_keys_are_tolerated():
    text = json.dumps({**_msg().to_dict(), "channel": "iopub", "msg_id": "m1", "msg_type": "comm_msg", "buffers": []})
    got = decode(text, True, None)
    assert got.channel is Channel.IOPUB and got.message.msg_id == "m1" and got.message.buffers == []


def test_legacy_text_without_channel_is_shell_like_the_server():
    got = decode(json.dumps(_msg().to_dict()), True, "")
    assert got.channel is Channel.SHELL


def test_nan_is_kept_and_marked():
    text = json.dumps({**_msg().to_dict(), "channel": "shell"}).replace('"value": 3', '"value": NaN')
    got = decode(text, True, None)
    assert not got.strict_json


def _v1(offsets, body=b"", n=None):
    n = len(offsets) if n is None else n
    return struct.pack(f"<{len(offsets) + 1}Q", n, *offsets) + body


# invariant 34: every malformed frame is a WsFrameError whose text says why
MALFORMED_V1 = [
    (b"\x01\x02", "shorter than its 8-byte offset count"),
    (struct.pack("<Q", 5) + b"\x00" * 48, "offset_number 5 < 6"),
    (struct.pack("<Q", 1 << 40), "needs a"),
    (_v1([57, 61, 63, 65, 67, 69], b"x" * 13), "offsets[0] is 57, expected 56"),
    (_v1([56, 61, 60, 65, 67, 69], b"x" * 13), "offsets decrease at index 2"),
    (_v1([56, 61, 63, 65, 67, 500], b"x" * 13), "past the end"),
    (_v1([56, 61, 63, 65, 67, 68], b"x" * 13), "last offset 68 != frame length 69"),
    (_v1([56, 61, 63, 65, 67, 69], b"bogus{}{}{}{}"), "unknown channel b'bogus'"),
    (_v1([56, 61, 63, 65, 67, 69], b"shell[]{}{}{}"), "header is a JSON list"),
    (_v1([56, 61, 63, 65, 67, 69], b"shell{}{}{}{x"), "content is not JSON"),
]


@pytest.mark.parametrize("frame,reason", MALFORMED_V1)
def test_malformed_v1(frame, reason):
    with pytest.raises(WsFrameError, match=re.escape(reason)):
        decode(frame, False, V1_PROTOCOL)


def test_v1_buffer_count_follows_offset_number():
    # offset_number 7 = one (empty) buffer; valid when the table is consistent
    good = _v1([64, 69, 71, 73, 75, 77, 77], b"shell{}{}{}{}")
    assert decode(good, False, V1_PROTOCOL).message.buffers == [b""]


def test_text_frame_on_v1_is_an_error():
    with pytest.raises(WsFrameError, match="binary only"):
        decode("{}", True, V1_PROTOCOL)


def _legacy(offsets, body, nbufs=None):
    nbufs = len(offsets) if nbufs is None else nbufs
    return struct.pack(f">{len(offsets) + 1}I", nbufs, *offsets) + body


MALFORMED_LEGACY_BINARY = [
    (b"\x00\x00", "shorter than its 4-byte part count"),
    (_legacy([8], b"{}"), "nbufs 1 < 2"),
    (struct.pack(">I", 70000) + b"\x00" * 8, "needs a"),
    (_legacy([16, 20], b'{"header":{}}ab'), "offsets[0] is 16, expected 12"),
    (_legacy([12, 10], b'{"header":{}}ab'), "offsets decrease"),
    (_legacy([12, 99], b'{"header":{}}ab'), "past the end"),
    (_legacy([12, 14], b"{x"), "JSON part is not JSON"),
    (_legacy([12, 14], b"[]ab"), "a JSON list, not an object"),
]


@pytest.mark.parametrize("frame,reason", MALFORMED_LEGACY_BINARY)
def test_malformed_legacy_binary(frame, reason):
    with pytest.raises(WsFrameError, match=re.escape(reason)):
        decode(frame, False, None)


@pytest.mark.parametrize(
    "text,reason",
    [
        ("not json", "not JSON"),
        ("[1, 2]", "a JSON list"),
        ('{"channel": "hb", "header": {}}', "unknown channel 'hb'"),
        ('{"channel": "shell"}', "header is missing"),
        ('{"channel": "shell", "header": {}, "content": 3}', "content is a JSON int"),
    ],
)
def test_malformed_legacy_text(text, reason):
    with pytest.raises(WsFrameError, match=reason):
        decode(text, True, None)


def test_unknown_subprotocol():
    with pytest.raises(WsFrameError, match="unknown kernel websocket subprotocol"):
        decode(b"", False, "v2.something")
    assert framing_name(None) == "legacy" and framing_name(V1_PROTOCOL) == "v1"


def test_preview_is_short_hex():
    assert preview(b"\x00\x01abc" * 100).startswith("00 01 61 62 63")
    assert len(preview("x" * 1000).split()) == 48


def test_encode_refuses_hb():
    with pytest.raises(ValueError):
        encode(_msg(), "hb", None)
