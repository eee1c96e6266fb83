"""The ZMQ frame codec: frames -> Message, and clear reasons when they are not one."""

import json

import pytest

from widgetspy.codec.zmqframes import DELIM, FrameError, parse_frames, peer_label, preview


def frames(header=None, parent=None, metadata=None, content=None, buffers=(), idents=(b"client-1",)):
    parts = [header or {"msg_id": "m1", "msg_type": "comm_msg"}, parent or {}, metadata or {}, content or {}]
    return [*idents, DELIM, b"f00dsig", *(json.dumps(p).encode() for p in parts), *buffers]


def test_parses_identities_dicts_and_buffers_and_drops_the_signature():
    wire = parse_frames(frames(content={"comm_id": "c", "data": {"method": "update"}}, buffers=[b"\x00\x01", b"AB"]))
    assert wire.identities == [b"client-1"]
    assert wire.message.msg_type == "comm_msg"
    assert wire.message.comm_id == "c" and wire.message.comm_method == "update"
    assert wire.message.buffers == [b"\x00\x01", b"AB"]
    assert wire.strict_json
    assert b"f00dsig" not in repr(wire).encode()


def test_message_without_identities_is_fine():
    assert parse_frames(frames(idents=())).identities == []


@pytest.mark.parametrize(
    "bad, reason",
    [
        ([b"x", b"y"], "no <IDS|MSG> delimiter"),
        ([DELIM, b"sig", b"{}", b"{}"], "3 frames after the delimiter"),
        ([DELIM, b"sig", b"{not json", b"{}", b"{}", b"{}"], "header is not JSON"),
        ([DELIM, b"sig", b"[1]", b"{}", b"{}", b"{}"], "header is a JSON list"),
        ([DELIM, b"sig", b"{}", b"{}", b"{}", b"\xff\xfe"], "content is not JSON"),
    ],
)
def test_bad_frames_say_why(bad, reason):
    with pytest.raises(FrameError, match=reason):
        parse_frames(bad)


def test_nan_is_kept_and_flagged_not_strict():
    f = frames()
    f[-1] = b'{"data": {"state": {"value": NaN}}}'
    wire = parse_frames(f)
    assert not wire.strict_json
    value = wire.message.content["data"]["state"]["value"]
    assert value != value  # NaN survives


def test_preview_and_peer_label():
    assert preview([b"\x01\x02", b"abc"]).startswith("01 02")
    assert peer_label(b"comm-abc") == "comm-abc"
    assert peer_label(b"\x00\xff") == "00ff"
