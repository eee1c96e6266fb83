"""The fast paths agree with the full ones: Timeline(history=False) against
history=True, and records decoded from a file against the records written."""

from __future__ import annotations

import random

import pytest

from widgetspy.message import Channel
from widgetspy.session import SessionHeader, SessionReadError, SessionWriter, open_session, read_session
from widgetspy.timeline import Side, Timeline

from test_timeline_core import Script, ident


def random_session(seed: int, steps: int = 400, nan: bool = True) -> Script:
    """Random widget traffic: opens, kernel and front-end updates (some with
    buffers), echoes and corrections, request_state, update_states, closes, a
    restart, NaN values."""
    rnd = random.Random(seed)
    s = Script()
    models: list[str] = []
    n = 0
    for _ in range(steps):
        roll = rnd.random()
        if roll < 0.12 or not models:
            ex = s.execute("w = W()")
            s.busy(ex.msg_id)
            n += 1
            cid = f"m{n}"
            state = {**ident("IntSlider"), "value": rnd.randrange(5), "layout": f"IPY_MODEL_m{max(1, n - 1)}"}
            if rnd.random() < 0.3:
                state["blob"] = rnd.randbytes(rnd.randrange(1, 9))
            s.k_open(cid, state, ex.msg_id)
            models.append(cid)
            s.idle(ex.msg_id)
        elif roll < 0.45:
            cid = rnd.choice(models)
            value = rnd.choice([rnd.randrange(5), float("nan") if nan else 0, None, [1, 2]])
            state = {"value": value} if rnd.random() < 0.8 else {"value": 1, "blob": rnd.randbytes(3)}
            up = s.fe_update(cid, state)
            s.busy(up.msg_id)
            s.k_update(cid, state, up.msg_id, method="echo_update")
            if rnd.random() < 0.3:
                s.k_update(cid, {"value": 4}, up.msg_id)
            s.idle(up.msg_id)
        elif roll < 0.55:
            # two front-end updates in flight: the older echo is ignored by the front-end
            cid = rnd.choice(models)
            a = s.fe_update(cid, {"value": 1})
            b = s.fe_update(cid, {"value": 2})
            s.busy(a.msg_id)
            s.k_update(cid, {"value": 1}, a.msg_id, method="echo_update")
            s.idle(a.msg_id)
            s.busy(b.msg_id)
            s.k_update(cid, {"value": 2}, b.msg_id, method="echo_update")
            s.idle(b.msg_id)
        elif roll < 0.8:
            ex = s.execute("for w in ws: w.value += 1")
            s.busy(ex.msg_id)
            for cid in rnd.sample(models, min(3, len(models))):
                s.k_update(cid, {"value": rnd.randrange(5), "description": "d"}, ex.msg_id)
            s.idle(ex.msg_id)
        elif roll < 0.88:
            cid = rnd.choice(models)
            req = s.fe("comm_msg", {"comm_id": cid, "data": {"method": "request_state"}})
            s.busy(req.msg_id)
            s.k_update(cid, {**ident("IntSlider"), "value": rnd.randrange(5)}, req.msg_id)
            s.idle(req.msg_id)
        elif roll < 0.93:
            cid = rnd.choice(models)
            s.k("comm_msg", {"comm_id": cid, "data": {"method": "custom", "content": {"x": 1}}}, None,
                buffers=[b"xyz"])
        elif roll < 0.97 and len(models) > 2:
            cid = models.pop(rnd.randrange(len(models)))
            if rnd.random() < 0.5:
                s.k("comm_close", {"comm_id": cid, "data": {}}, None)
            else:
                close = s.fe("comm_close", {"comm_id": cid, "data": {}})
                s.busy(close.msg_id)
                s.idle(close.msg_id)
        elif roll < 0.975:
            s.event("kernel_restarted", pid=2)
            s.kernel_session += "'"
            models.clear()
        else:
            s.k("stream", {"name": "stdout", "text": "x"}, None, channel=Channel.IOPUB)
    return s


def summary(tl: Timeline) -> list:
    out = []
    for m in tl.models:
        out.append((m.comm_id, m.epoch, m.change_count, dict(m.update_count), dict(m.opened), dict(m.closed),
                    m.closed_by, repr(m.state[Side.KERNEL]), repr(m.state[Side.FRONTEND])))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_history_off_keeps_the_same_states_and_counts(seed):
    s = random_session(seed)
    full = s.timeline(history=True)
    lean = s.timeline(history=False)
    assert summary(lean) == summary(full)
    assert [(p.seq, p.text) for p in lean.problems] == [(p.seq, p.text) for p in full.problems]
    assert sum(m.change_count for m in full.models) == len(full.changes())
    records = {r.seq: r for r in s.records}
    for ch in full.changes():
        assert isinstance(ch.t, float) and ch.t == records[ch.seq].t


@pytest.mark.parametrize("seed", range(3))
def test_a_session_read_back_rebuilds_the_same_timeline(tmp_path, seed):
    s = random_session(seed, nan=False)  # (NaN != NaN)
    path = tmp_path / "s.jsonl"
    with SessionWriter(path, SessionHeader(1, "0", "now", {}, ["zmq"])) as w:
        w.write_many(s.records)
    streamed = list(open_session(path))
    assert streamed == s.records
    assert read_session(path)[1] == s.records
    for history in (True, False):
        assert summary(Timeline(history=history).feed_all(open_session(path))) == summary(s.timeline(history=history))


def test_a_corrupt_buffer_is_reported_by_read_session_and_when_used(tmp_path):
    s = random_session(1)
    path = tmp_path / "s.jsonl"
    with SessionWriter(path, SessionHeader(1, "0", "now", {}, ["zmq"])) as w:
        w.write_many(s.records)
    lines = path.read_bytes().splitlines(keepends=True)
    bad = next(i for i, line in enumerate(lines) if b'"sha256":"' in line)
    lines[bad] = lines[bad].replace(b'"sha256":"', b'"sha256":"0', 1)
    path.write_bytes(b"".join(lines))
    with pytest.raises(SessionReadError, match=f"line {bad + 1}: buffer sha256 does not match"):
        read_session(path)
    with pytest.raises(SessionReadError, match=f"line {bad + 1}: buffer sha256 does not match"):
        for rec in open_session(path):
            if hasattr(rec, "msg"):
                list(rec.msg.buffers)


def test_encoded_buffers_decode_on_first_use_and_act_as_a_list(tmp_path):
    import copy
    import pickle

    from widgetspy.session.format import EncodedBuffers, decode_record, encode_record

    s = random_session(2, nan=False)
    rec = next(r for r in s.records if getattr(r, "msg", None) is not None and len(r.msg.buffers) == 1)
    line = encode_record(rec)
    bufs = decode_record(line, lineno=7).msg.buffers
    assert isinstance(bufs, EncodedBuffers) and isinstance(bufs, list)
    assert len(bufs) == 1 and bufs and bufs._encoded  # no decoding for len() and truth
    assert bufs.sizes == [len(rec.msg.buffers[0])] and bufs._encoded
    assert bufs == rec.msg.buffers and rec.msg.buffers == bufs and not bufs._encoded
    assert list(bufs) == [bufs[0]] == bufs[:] == rec.msg.buffers
    assert [b"x"] + bufs == [b"x", *rec.msg.buffers] and bufs + [b"x"] == [*rec.msg.buffers, b"x"]
    assert b"".join(bufs) == rec.msg.buffers[0] and tuple(bufs) == tuple(rec.msg.buffers)
    assert pickle.loads(pickle.dumps(bufs)) == rec.msg.buffers and copy.copy(bufs) == rec.msg.buffers
    assert repr(bufs) == repr(rec.msg.buffers)
    # a corrupt one fails when used, naming its line
    bad = decode_record(line.replace(b'"sha256":"', b'"sha256":"0'), lineno=7, source="f.jsonl").msg.buffers
    assert len(bad) == 1
    with pytest.raises(SessionReadError, match="^f.jsonl: line 7: buffer sha256 does not match its data$"):
        bad[0]
    # without a line number, decode_record checks the buffers itself
    with pytest.raises(ValueError, match="sha256"):
        decode_record(line.replace(b'"sha256":"', b'"sha256":"0'))
