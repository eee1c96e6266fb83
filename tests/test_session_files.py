"""Session format v1 and session files: round trips, crash-safety, bad input."""

import gzip
import os
import stat

import pytest

from widgetspy.message import Channel, Direction, Message
from widgetspy.session import (
    FORMAT_VERSION,
    EventRecord,
    MessageRecord,
    SessionHeader,
    SessionReadError,
    SessionWriteError,
    SessionWriter,
    UnparsedRecord,
    read_session,
)


def header():
    return SessionHeader(FORMAT_VERSION, "0.1.0", "2026-11-24T00:00:00Z", {"name": "python3"}, ["zmq"], {"mode": "test"})


def sample_records():
    msg = Message(
        {"msg_id": "m1", "msg_type": "comm_msg", "session": "s"},
        {"msg_id": "p1", "msg_type": "execute_request"},
        {},
        {"comm_id": "c1", "data": {"method": "update", "state": {"x": 1}, "buffer_paths": [["v"]]}},
        [b"\x00\xffbinary"],
    )
    return [
        EventRecord(1, 0.0, "kernel_started", {"pid": 42}),
        MessageRecord(2, 0.5, "zmq", Direction.TO_FRONTEND, Channel.IOPUB, msg, 7, 300, "comm-c1"),
        UnparsedRecord(3, 0.6, "zmq", Direction.TO_KERNEL, Channel.SHELL, "no <IDS|MSG> delimiter frame", "01 02", 2, 10),
    ]


def write(path, records=None):
    with SessionWriter(path, header()) as w:
        w.write_many(records if records is not None else sample_records())


def test_round_trip_keeps_every_field(tmp_path):
    path = tmp_path / "s.jsonl"
    write(path)
    h, records, warnings = read_session(path)
    assert h == header()
    assert records == sample_records()
    assert warnings == []


def test_created_owner_only_and_never_overwritten(tmp_path):
    path = tmp_path / "s.jsonl"
    old = os.umask(0)
    try:
        write(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(SessionWriteError, match="already exists"):
        write(path)
    SessionWriter(path, header(), overwrite=True).close()
    assert read_session(path)[1] == []


def test_truncated_last_line_is_dropped_with_a_warning(tmp_path):
    path = tmp_path / "s.jsonl"
    write(path)
    data = path.read_bytes()
    path.write_bytes(data[:-40])  # as if killed in the middle of the last write
    _, records, warnings = read_session(path)
    assert [r.seq for r in records] == [1, 2]
    assert len(warnings) == 1 and "truncated" in warnings[0]


def test_gzip_is_read_and_a_cut_gzip_keeps_what_it_has(tmp_path):
    path = tmp_path / "s.jsonl"
    write(path, sample_records() * 50)
    gz = tmp_path / "s.jsonl.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert read_session(gz)[1] == sample_records() * 50
    gz.write_bytes(gz.read_bytes()[: len(gz.read_bytes()) // 2])
    _, records, warnings = read_session(gz)
    assert 0 < len(records) < 150 and warnings


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"\x00\x01garbage\xff\n", "not a widgetspy session"),
        (b'{"hello": "world"}\n', "no widgetspy-session header"),
        (b'{"format": "widgetspy-session", "format_version": 99}\n', "newer than this widgetspy reads"),
        (b'{"format": "widgetspy-session", "format_version": "one"}\n', "bad format_version"),
    ],
)
def test_files_that_are_not_sessions_get_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(SessionReadError, match=message) as info:
        read_session(path)
    assert "\n" not in str(info.value)


def test_a_garbled_middle_line_is_an_error_with_its_line_number(tmp_path):
    path = tmp_path / "s.jsonl"
    write(path)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"seq": 2, "t": 0.5, "type": "msg"}\n'
    path.write_bytes(b"".join(lines))
    with pytest.raises(SessionReadError, match="line 3: record without 'msg'"):
        read_session(path)


def test_a_buffer_whose_hash_does_not_match_is_rejected(tmp_path):
    path = tmp_path / "s.jsonl"
    write(path)
    path.write_bytes(path.read_bytes().replace(b'"sha256":"', b'"sha256":"0'))
    with pytest.raises(SessionReadError, match="sha256"):
        read_session(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SessionReadError, match="no such file"):
        read_session(tmp_path / "nope.jsonl")
    with pytest.raises(SessionReadError, match="directory"):
        read_session(tmp_path)


def test_nan_in_a_message_survives_the_round_trip(tmp_path):
    rec = sample_records()[1]
    rec.msg.content["data"]["state"]["x"] = float("inf")
    rec.strict_json = False
    path = tmp_path / "s.jsonl"
    write(path, [rec])
    (back,) = read_session(path)[1]
    assert back.msg.content["data"]["state"]["x"] == float("inf")
    assert back.strict_json is False
