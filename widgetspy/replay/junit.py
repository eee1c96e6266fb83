"""A replay's result as JUnit XML (a string, no I/O), for CI systems that are not
pytest: `widgetspy replay FILE --junit report.xml`.

One test suite per replayed session; one test case per replayed front-end
message (failed when the kernel's answer diverged, with the expected and actual
values), and one case for the inspector findings the replayed run has and the
recording did not (failed at or above `fail_on`).
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from ..inspectors import Severity
from .compare import show_value
from .runner import ReplayResult


def replay_junit(r: ReplayResult, fail_on: Severity | None = Severity.ERROR) -> str:
    by_request: dict[int, list] = {}
    for d in r.divergences:
        by_request.setdefault(d.request_seq, []).append(d)
    cases: list[str] = []
    failures = 0
    classname = quoteattr(f"widgetspy.replay.{r.path.name}")
    steps = {s.seq: s for s in r.plan.steps}
    sent = [s.seq for s in r.plan.steps][: r.sent]  # the engine sends the plan's steps in order
    extra = sorted(set(by_request) - set(sent))  # (none expected)
    for seq in [*sent, *extra]:
        label = steps[seq].describe() if seq in steps else (by_request[seq][0].request if by_request.get(seq) else "")
        name = quoteattr(f"@{seq} {label}")
        body = ""
        divs = by_request.get(seq, [])
        if divs:
            failures += 1
            first = divs[0]
            text = "\n".join(f"seq {d.seq} {d.where}\n  expected: {show_value(d.expected, 400)}\n  actual:   "
                             f"{show_value(d.actual, 400)}" for d in divs)
            body = (f"<failure message={quoteattr(f'{len(divs)} divergence(s): {first.short()}')} "
                    f'type="divergence">{escape(text)}</failure>')
        cases.append(f"    <testcase name={name} classname={classname} file={quoteattr(str(r.path))}>{body}</testcase>")
    failing = [f for f in r.new_findings if fail_on is not None and f.severity >= fail_on]
    body = ""
    if failing:
        failures += 1
        body = (f"<failure message={quoteattr(f'{len(failing)} new finding(s): {failing[0].one_line()}')} "
                f'type="finding">{escape(chr(10).join(f.one_line() for f in failing))}</failure>')
    rest = [f for f in r.new_findings if f not in failing]
    if rest:
        body += "<system-out>" + escape("\n".join(f.one_line() for f in rest)) + "</system-out>"
    cases.append(f"    <testcase name={quoteattr('new inspector findings')} classname={classname} "
                 f"file={quoteattr(str(r.path))}>{body}</testcase>")
    notes = "".join(f"{n}\n" for n in r.notes)
    head = (f'<testsuite name={quoteattr("widgetspy replay " + str(r.path))} tests="{len(cases)}" '
            f'failures="{failures}" errors="0" skipped="0" time="{r.elapsed:.3f}">')
    tail = f"    <system-out>{escape(notes)}</system-out>\n" if notes else ""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n  ' + head + "\n" + "\n".join(cases) + "\n"
            + tail + "  </testsuite>\n</testsuites>\n")


def error_junit(path: str, message: str) -> str:
    """The replay could not run (bad file, kernel failure): one errored case."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n  '
            f'<testsuite name={quoteattr("widgetspy replay " + path)} tests="1" failures="0" errors="1" skipped="0">\n'
            f'    <testcase name="replay" classname={quoteattr("widgetspy.replay." + path.rsplit("/", 1)[-1])} '
            f'file={quoteattr(path)}><error message={quoteattr(message)} type="ReplayError"/></testcase>\n'
            "  </testsuite>\n</testsuites>\n")
