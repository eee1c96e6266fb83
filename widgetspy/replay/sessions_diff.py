"""Compare two recorded sessions offline: did the kernel answer the same front-end
messages the same way? Sans-IO (records in, differences out).

This is replay's comparison without a kernel: the stored recording plays the
part of "then" and a new recording of the same front-end script (a test run
under the pytest fixture) the part of "now".

- The front-end messages of both sessions are paired in order (`plan.build_plan`
  on each; `kernel_info_request`s are left out, since clients send a variable
  number of them while they connect). A pair whose types differ ends the
  pairing: the script changed, nothing after it can be compared.
- Ids are mapped with `idmap.IdMap`: message ids of the pairs, the comm ids the
  front-end made up, kernel-created comms by order and class within a request,
  `input_request` ids.
- What each front-end message carried is compared (after mapping ids), then
  the kernel's answers, boiled down with `compare.digest` and diffed with
  `compare.diff_digests` exactly as replay does (same `Ignores`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..message import Message
from ..session import read_session
from ..session.records import Record
from .compare import (
    MISSING, Divergence, Ignores, buffer_token, diff_digests, digest, divergence_lines, field_diffs, near_misses,
)
from .engine import recorded_kernel_messages
from .idmap import IdMap
from .plan import Plan, Step, build_plan

UNPAIRED_TYPES = frozenset({"kernel_info_request"})


@dataclass
class SessionsDiff:
    expected: str  # labels (paths) for the report
    actual: str
    pairs: int  # front-end messages compared
    divergences: list[Divergence] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.divergences

    def report(self, limit: int = 30) -> str:
        return "\n".join(report_lines(self.divergences, f"{self.actual} against {self.expected}", self.pairs, limit))


def pairable(plan: Plan) -> list[Step]:
    return [s for s in plan.steps if s.msg_type not in UNPAIRED_TYPES]


def diff_sessions(expected: Iterable[Record], actual: Iterable[Record], ignore: Iterable[str] | Ignores = (),
                  *, labels: tuple[str, str] = ("expected", "actual")) -> SessionsDiff:
    """`expected`: the stored recording's records; `actual`: the new run's. `ignore`:
    replay's `--ignore` specs (state.KEY, re:REGEX, a category) or an `Ignores`."""
    ignores = ignore if isinstance(ignore, Ignores) else Ignores.parse(ignore)
    teardown = Ignores(categories=set(Ignores.CATEGORIES) - {"reply"})
    plan_e, plan_a = build_plan(expected), build_plan(actual)
    steps_e, steps_a = pairable(plan_e), pairable(plan_a)
    ids = IdMap()
    models_e: dict[str, str] = {}
    models_a: dict[str, str] = {}
    out: list[Divergence] = []
    pairs = 0
    for i, (se, sa) in enumerate(zip(steps_e, steps_a)):
        if se.msg_type != sa.msg_type or se.channel is not sa.channel:
            out.append(Divergence(se.seq, se.seq, se.describe(), f"front-end message #{i + 1}",
                                  f"{se.channel.value} {se.describe()}", f"{sa.channel.value} {sa.describe()}"))
            break  # the scripts part ways here
        pairs += 1
        ids.learn(se.msg_id, sa.msg_id)
        msg_e, msg_a = se.record.msg, sa.record.msg
        if se.msg_type == "comm_open":  # a comm the front-end made up
            ids.learn(msg_e.comm_id, msg_a.comm_id)
        # what the front-end sent
        sent_e = {"content": msg_e.content, "buffers": [buffer_token(bytes(b)) for b in msg_e.buffers]}
        sent_a = {"content": ids.to_recorded(msg_a.content), "buffers": [buffer_token(bytes(b)) for b in msg_a.buffers]}
        for path, ev, av in field_diffs(sent_e, sent_a, "front-end sent"):
            out.append(Divergence(se.seq, se.seq, se.describe(), path, ev, av))
        # what the kernel answered
        answers_e = plan_e.expected[se.seq]
        ids.expect_comm_opens(i, [r.msg for r in answers_e if r.msg_type == "comm_open"])
        inputs = [r.msg_id or "" for r in answers_e if r.msg_type == "input_request"]
        mapped: list[Message] = []
        for r in plan_a.expected[sa.seq]:
            m = r.msg
            if m.msg_type == "comm_open":
                ids.replayed_comm_open(i, m)
            elif m.msg_type == "input_request" and inputs:
                ids.learn(inputs.pop(0), m.msg_id)
            mapped.append(Message(m.header, m.parent_header, m.metadata, ids.to_recorded(m.content), m.buffers))
        d_e = digest(((r.seq, r.msg) for r in answers_e), models_e)
        d_a = digest(((None, m) for m in mapped), models_a)
        rules = teardown if se.msg_type == "shutdown_request" else ignores
        out.extend(diff_digests(d_e, d_a, se.seq, se.describe(), rules))
    else:
        if len(steps_e) != len(steps_a):
            n = min(len(steps_e), len(steps_a))
            if len(steps_e) > n:
                se = steps_e[n]
                out.append(Divergence(se.seq, se.seq, se.describe(), f"front-end message #{n + 1}",
                                      f"{se.channel.value} {se.describe()} (and {len(steps_e) - n - 1} more)",
                                      MISSING))
            else:
                sa = steps_a[n]
                last = steps_e[-1].seq if steps_e else 0
                out.append(Divergence(last, last, "end of the recording", f"front-end message #{n + 1}", MISSING,
                                      f"{sa.channel.value} {sa.describe()} (and {len(steps_a) - n - 1} more)"))
    recorded = recorded_kernel_messages(plan_e)
    for dv in out:
        if dv.expected == MISSING and dv.msg_type:
            dv.near = near_misses(dv.msg_type, dv.actual, recorded)
    out.sort(key=lambda d: d.seq)
    return SessionsDiff(labels[0], labels[1], pairs, out)


def diff_session_files(expected: str | Path, actual: str | Path, ignore: Iterable[str] = ()) -> SessionsDiff:
    """Read both files (SessionReadError when one is not a session) and compare them."""
    _h, rec_e, _w = read_session(expected)
    _h, rec_a, _w = read_session(actual)
    return diff_sessions(rec_e, rec_a, ignore, labels=(str(expected), str(actual)))


def report_lines(divergences: list[Divergence], what: str, pairs: int, limit: int = 30) -> list[str]:
    """Plain-text report, shaped like `widgetspy replay`'s."""
    if not divergences:
        return [f"identical: {what} ({pairs} front-end messages compared)"]
    first = divergences[0]
    lines = [f"DIVERGED at seq {first.seq}, in {first.request} @{first.request_seq} ({what})"]
    lines.extend(divergence_lines(divergences, limit))
    return lines
