"""Lean message records (open_session(path, lean=True)) mean what the full
records mean: the same accessor values line by line, and the same timeline,
on the real recordings, on the benchmark's generated session and on random
traffic with NaN and odd values (which the lean schema hands to the full one)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from widgetspy.session import MessageRecord, SessionHeader, SessionReadError, SessionWriter, open_session
from widgetspy.session.lean import LeanMessageRecord, decode_lean_record
from widgetspy.timeline import Side, Timeline

from test_timeline_fast_paths import random_session

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = sorted((ROOT / "recordings").glob("*.jsonl"))

RECORD_FIELDS = ("seq", "t", "tap", "direction", "channel", "frames", "size", "peer", "strict_json", "msg_type", "msg_id")
MESSAGE_ACCESSORS = ("msg_id", "msg_type", "session", "parent_id", "comm_id", "comm_data", "comm_method", "content",
                     "metadata")


def same_records(path: Path) -> int:
    """Every record read both ways agrees; returns how many lines were lean."""
    lean_count = 0
    full = list(open_session(path))
    lean = list(open_session(path, lean=True))
    assert len(full) == len(lean)
    for f, g in zip(full, lean):
        if g.__class__ is not LeanMessageRecord:
            assert g == f  # (events, unparsed frames, lines the lean schema does not take)
            continue
        lean_count += 1
        assert f.__class__ is MessageRecord
        for name in RECORD_FIELDS:
            assert getattr(g, name) == getattr(f, name), (f.seq, name)
        for name in MESSAGE_ACCESSORS:
            assert getattr(g.msg, name) == getattr(f.msg, name), (f.seq, name)
        assert list(g.msg.buffers) == list(f.msg.buffers)
        assert g.msg.header.msg_id == f.msg.header.get("msg_id")
    return lean_count


def timeline_summary(tl: Timeline) -> tuple:
    models = [(m.comm_id, m.target_name, m.epoch, m.opened_by, m.open_msg_seq, m.change_count, dict(m.update_count),
               dict(m.opened), dict(m.closed), m.closed_by, m.close_msg_seq, m.model_name, m.model_module,
               m.view_name, repr(m.state[Side.KERNEL]), repr(m.state[Side.FRONTEND]), dict(m.expected_echo))
              for m in tl.models]
    others = [(c.comm_id, c.target_name, dict(c.opened), dict(c.closed)) for c in tl.comms]
    epochs = [(e.index, e.start_seq, e.end_seq, e.end_reason, e.kernel_session, e.started_by, list(e.models))
              for e in tl.epochs]
    problems = [(p.seq, p.text, p.model_id) for p in tl.problems]
    return (models, others, epochs, problems, tl.final_seq(), tl.last_seq, tl.last_t, tl.records, tl.messages,
            tl.unparsed, *(repr({mid: state for mid, (_m, state) in tl.states(side=side).items()}) for side in Side))


def same_timelines(path: Path) -> None:
    lean = Timeline(history=False).feed_all(open_session(path, lean=True))
    full = Timeline(history=False).feed_all(open_session(path))
    history = Timeline(history=True).feed_all(open_session(path))
    assert timeline_summary(lean) == timeline_summary(full) == timeline_summary(history)


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_lean_records_and_timeline_agree_on_real_recordings(path):
    assert same_records(path) > 0
    same_timelines(path)


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_timeline", ROOT / "benchmarks" / "bench_timeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lean_path_agrees_on_the_generated_benchmark_session(tmp_path):
    bench = load_bench()
    path = tmp_path / "bench.jsonl"
    with SessionWriter(path, SessionHeader(1, "0", "now", {}, ["zmq"])) as w:
        gen = bench.Gen(w, seed=11)
        gen.build(6000, models=200)
    assert same_records(path) == gen.n
    same_timelines(path)


@pytest.mark.parametrize("seed", range(4))
def test_lean_path_agrees_on_random_traffic_with_nan(tmp_path, seed):
    s = random_session(seed, nan=True)
    path = tmp_path / "s.jsonl"
    with SessionWriter(path, SessionHeader(1, "0", "now", {}, ["zmq"])) as w:
        w.write_many(s.records)
    # the writer keeps NaN only for records that hold it when recorded; put some in
    path.write_bytes(path.read_bytes().replace(b'"state":{"value":null}', b'"state":{"value":NaN}'))
    lean = list(open_session(path, lean=True))
    assert any(r.__class__ is LeanMessageRecord for r in lean)
    assert any(r.__class__ is MessageRecord for r in lean)  # the NaN lines, decoded the full way
    same_timelines(path)


def test_odd_values_fall_back_to_the_full_decoder():
    line = (b'{"seq":3,"t":0.5,"type":"msg","tap":"zmq","dir":"to_frontend","channel":"iopub",'
            b'"msg":{"header":{"msg_id":7,"msg_type":"status"},"parent_header":{"msg_id":[1]},"metadata":{},'
            b'"content":{"execution_state":"idle"}},"buffers":[],"frames":7,"bytes":400}\n')
    rec = decode_lean_record(line, 2)
    assert rec.__class__ is MessageRecord and rec.msg.msg_id == 7 and rec.msg.parent_id == [1]
    ok = line.replace(b'"msg_id":7', b'"msg_id":"7"').replace(b'"msg_id":[1]', b'"msg_id":null')
    rec = decode_lean_record(ok, 2)
    assert rec.__class__ is LeanMessageRecord and rec.msg.msg_id == "7" and rec.msg.parent_id is None
    assert rec.msg.msg_type == "status" and rec.msg_type == "status" and rec.msg.comm_id is None
    with pytest.raises(ValueError, match="record without 'msg.content'"):
        decode_lean_record(line.replace(b',"content":{"execution_state":"idle"}', b""), 2)


def test_lean_reader_reports_corrupt_buffers_truncated_and_blank_lines(tmp_path):
    s = random_session(1, nan=False)
    path = tmp_path / "s.jsonl"
    with SessionWriter(path, SessionHeader(1, "0", "now", {}, ["zmq"])) as w:
        w.write_many(s.records)
    lines = path.read_bytes().splitlines(keepends=True)
    bad = next(i for i, line in enumerate(lines) if b'"sha256":"' in line)
    corrupt = list(lines)
    corrupt[bad] = corrupt[bad].replace(b'"sha256":"', b'"sha256":"0', 1)
    path.write_bytes(b"".join(corrupt))
    with pytest.raises(SessionReadError, match=f"line {bad + 1}: buffer sha256 does not match"):
        for rec in open_session(path, lean=True):
            if hasattr(rec, "msg"):
                list(rec.msg.buffers)
    # a blank line is skipped, a truncated last line dropped with a warning
    path.write_bytes(b"".join(lines[:5]) + b"\n" + b"".join(lines[5:]) + lines[6][:40])
    sf = open_session(path, lean=True)
    records = list(sf)
    assert len(records) == len(lines) - 1
    assert len(sf.warnings) == 1 and f"last line {len(lines) + 2} is truncated" in sf.warnings[0]
    # a bad line in the middle is an error naming it
    path.write_bytes(b"".join(lines[:5]) + b"{nope\n" + b"".join(lines[5:]))
    with pytest.raises(SessionReadError, match="line 6: not JSON"):
        list(open_session(path, lean=True))


def test_prefer_tap_keeps_one_copy_of_lean_records(tmp_path):
    import dataclasses

    from widgetspy.session.taps import prefer_tap

    s = random_session(3, nan=False)
    records, seq = [], 0
    for rec in s.records:
        copies = [rec, dataclasses.replace(rec, tap="ws")] if isinstance(rec, MessageRecord) else [rec]
        for copy in copies:
            seq += 1
            records.append(dataclasses.replace(copy, seq=seq))
    path = tmp_path / "both.jsonl"
    with SessionWriter(path, SessionHeader(1, "0", "now", {}, ["zmq", "ws"])) as w:
        w.write_many(records)
    taps = ["zmq", "ws"]
    lean = list(prefer_tap(open_session(path, lean=True), taps))
    full = list(prefer_tap(open_session(path), taps))
    assert [r.seq for r in lean] == [r.seq for r in full] and all(getattr(r, "tap", "zmq") == "zmq" for r in lean)
    assert timeline_summary(Timeline(history=False).feed_all(lean)) == timeline_summary(
        Timeline(history=True).feed_all(full))
