"""The pytest plugin (widgetspy/pytest_plugin.py), tested with pytest's own
pytester: recorded sessions as replay items, the `widgetspy` fixture's record
modes, redaction, and `widgetspy replay --junit`. Real kernels throughout; the
inner pytest runs in this process unless a test needs a separate one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from widgetspy.message import Channel, Direction, Message
from widgetspy.proxy.redact import REDACTED, Redactor
from widgetspy.replay.sessions_diff import diff_session_files
from widgetspy.session.format import encode_record
from widgetspy.session.records import MessageRecord

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = ROOT / "recordings"
QUICK = "output_capture.jsonl"  # a small recording: a button click printing into an Output widget


def copy_recording(dest: Path, name: str = QUICK, edit: tuple[str, str] | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / name
    text = (RECORDINGS / name).read_text()
    if edit:
        assert edit[0] in text
        text = text.replace(*edit)
    out.write_text(text)
    return out


# ---------------------------------------------------------------------- recorded sessions as items


@pytest.mark.kernel
def test_a_recording_that_replays_identically_passes(pytester: pytest.Pytester) -> None:
    copy_recording(pytester.path / "recs")
    result = pytester.runpytest("--widgetspy-replay", "recs", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*recs/output_capture.jsonl::replay PASSED*"])


@pytest.mark.kernel
def test_a_diverging_recording_fails_with_the_diff(pytester: pytest.Pytester, tmp_path: Path) -> None:
    # the recording says the second click printed "clicked 7"; the kernel prints "clicked 2"
    copy_recording(pytester.path / "recs", edit=("clicked 2", "clicked 7"))
    result = pytester.runpytest("--widgetspy-replay", "recs")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "DIVERGED at seq" in out and "comm_msg custom ButtonModel" in out, out
    assert 'expected: "clicked 7\\n"' in out and 'actual:   "clicked 2\\n"' in out, out
    # a sidecar takes the volatile part out of the comparison
    (pytester.path / "recs" / f"{QUICK}.toml").write_text('ignore = ["re:clicked \\\\d"]\n')
    pytester.runpytest("--widgetspy-replay", "recs").assert_outcomes(passed=1)
    # a typo in a sidecar is an error, with the near miss
    (pytester.path / "recs" / f"{QUICK}.toml").write_text('ignores = ["stream"]\n')
    result = pytester.runpytest("--widgetspy-replay", "recs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unknown option 'ignores' (did you mean 'ignore'?)*"])
    # `widgetspy replay --junit`: the same divergence for CI systems that are not pytest
    (pytester.path / "recs" / f"{QUICK}.toml").unlink()
    junit = tmp_path / "replay.xml"
    proc = subprocess.run([sys.executable, "-m", "widgetspy", "replay", "-q", str(pytester.path / "recs" / QUICK),
                           "--junit", str(junit)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    suite = ET.parse(junit).getroot().find("testsuite")
    failed = [tc for tc in suite.iter("testcase") if tc.find("failure") is not None]
    assert suite.get("failures") == "1" and len(failed) == 1
    assert "comm_msg custom ButtonModel" in failed[0].get("name")
    assert "clicked 7" in failed[0].find("failure").text
    assert int(suite.get("tests")) >= 6  # one case per replayed request, one for new findings


def test_ini_option_lists_the_sessions_and_sessions_diff_is_offline(pytester: pytest.Pytester) -> None:
    """No kernel: the ini option's globs decide what is collected; the offline
    comparison of two sessions finds an edited output."""
    copy_recording(pytester.path / "recs")
    copy_recording(pytester.path / "other", "bug_comm_leak.jsonl")
    pytester.makeini("[pytest]\nwidgetspy_replay =\n    recs\n    other/*.jsonl\n")
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["other/bug_comm_leak.jsonl::replay", "recs/output_capture.jsonl::replay"])
    original = RECORDINGS / QUICK
    assert diff_session_files(original, original).identical
    edited = copy_recording(pytester.path / "edited", edit=("clicked 2", "clicked 7"))
    diff = diff_session_files(original, edited)
    assert not diff.identical and "stream stdout" in diff.report() and "clicked 7" in diff.report()


# ---------------------------------------------------------------------- the fixture and its modes

FIXTURE_TEST = """
def test_slider(widgetspy):
    widgetspy.execute("import ipywidgets as W\\ns = W.IntSlider(max=10)\\ndisplay(s)")
    slider = widgetspy.widget("IntSlider")
    result = widgetspy.update(slider, value=42)          # as a browser: update, echo, idle
    assert widgetspy.echo(result) == {"value": 42}
    assert slider["value"] == 10                          # the kernel clamped it; the front-end knows
    assert widgetspy.timeline.state(slider.id)["value"] == 10
    assert widgetspy.execute("print(s.value, %r)").stdout == "10 %s\\n"
    assert widgetspy.errors == []
"""


def fixture_test(word: str) -> str:
    return FIXTURE_TEST % (word, word)


@pytest.mark.kernel
def test_record_modes_on_missing_and_present_recordings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_widgets=fixture_test("a"))
    stored = pytester.path / "recordings" / "test_widgets" / "test_slider.jsonl"

    # none (the default) on a missing recording: a clear failure, nothing written
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no recording for this test at *test_slider.jsonl*--widgetspy-mode=once*"])
    assert not stored.exists()

    # once on a missing recording: runs the test and records it
    pytester.runpytest("--widgetspy-mode=once").assert_outcomes(passed=1)
    first = stored.read_bytes()
    assert b'"execute_request"' in first

    # none and once on a present recording: compare, never write
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.runpytest("--widgetspy-mode=once").assert_outcomes(passed=1)
    assert stored.read_bytes() == first

    # the test's traffic changes: both modes fail with the divergence report; the recording stays
    pytester.makepyfile(test_widgets=fixture_test("b"))
    for args in ([], ["--widgetspy-mode=once"]):
        result = pytester.runpytest(*args)
        result.assert_outcomes(failed=1)
        out = result.stdout.str()
        assert "differs from its recording" in out and "DIVERGED at seq" in out, out
        assert 'stream stdout: expected "10 a\\n", got "10 b\\n"' in out, out  # what the kernel answered
        assert "front-end sent.content.code" in out  # what the test sent changed too
        assert stored.read_bytes() == first

    # rewrite: records again, truly overwriting; then the new recording is the reference
    pytester.runpytest("--widgetspy-mode=rewrite").assert_outcomes(passed=1)
    second = stored.read_bytes()
    assert second != first and b"10 b" in second and b"10 a" not in second
    pytester.runpytest().assert_outcomes(passed=1)

    # a failing test never becomes the reference
    pytester.makepyfile(test_widgets=fixture_test("c") + "\n    assert False\n")
    pytester.runpytest("--widgetspy-mode=rewrite").assert_outcomes(failed=1)
    assert stored.read_bytes() == second


def test_a_bad_mode_name_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x(widgetspy):\n    pass\n")
    result = pytester.runpytest("--widgetspy-mode=onse")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown widgetspy record mode 'onse' (did you mean 'once'?)*none, once, rewrite*"])
    pytester.makeini("[pytest]\nwidgetspy_mode = rewrit\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*widgetspy_mode*'rewrit' (did you mean 'rewrite'?)*"])
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_x="import pytest\n@pytest.mark.widgetspy(mod='once')\n"
                               "def test_x(widgetspy):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*unknown option 'mod' (did you mean 'mode'?)*"])


# ---------------------------------------------------------------------- redaction


@pytest.mark.kernel
def test_redaction_keeps_secrets_out_of_the_recording(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_secret="""
        import json, pytest

        @pytest.mark.widgetspy(redact=["hunter2"])
        def test_secret(widgetspy):
            key = json.loads(widgetspy.connection_file.read_text())["key"]
            open("key.txt", "w").write(key)
            r = widgetspy.execute(
                "import json, ipykernel.connect\\n"
                "print('password: hunter2')\\n"
                "print('http://localhost:8888/lab?token=abcdef0123456789&x=1')\\n"
                "print('key', json.loads(ipykernel.connect.get_connection_info())['key'])")
            assert "hunter2" in r.stdout and key in r.stdout  # the front-end sees them; the file will not
    """)
    pytester.runpytest("--widgetspy-mode=rewrite").assert_outcomes(passed=1)
    data = (pytester.path / "recordings" / "test_secret" / "test_secret.jsonl").read_text()
    key = (pytester.path / "key.txt").read_text()
    assert len(key) >= 16
    assert "hunter2" not in data and "abcdef0123456789" not in data and key not in data
    assert "password: [redacted]" in data and "token=[redacted]&x=1" in data and "key [redacted]" in data


def test_redactor_rewrites_only_matching_records() -> None:
    def rec(text: str, buffers: list[bytes] = ()) -> MessageRecord:
        msg = Message({"msg_id": "m1", "msg_type": "stream"}, {}, {}, {"name": "stdout", "text": text}, list(buffers))
        return MessageRecord(1, 0.5, "zmq", Direction.TO_FRONTEND, Channel.IOPUB, msg)

    red = Redactor.for_recording("0123456789abcdef", ["s3cr[e]t"])
    clean = rec("nothing to see")
    data, written = red.encode([clean])
    assert data == encode_record(clean) and written[0] is clean and red.redacted == 0
    data, written = red.encode([rec("s3cret and 0123456789abcdef, ?token=tok123"), rec("x", [b"raw s3cret"])])
    assert b"s3cret" not in data and b"0123456789abcdef" not in data and b"tok123" not in data
    assert written[0].msg.content["text"] == f"{REDACTED} and {REDACTED}, ?token={REDACTED}"
    assert written[1].msg.buffers == [b"raw " + REDACTED.encode()] and red.redacted == 2
    proc = subprocess.run([sys.executable, "-m", "widgetspy", "record", "--redact", "bad(", "-o", "x.jsonl"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "bad regex" in proc.stderr and "Traceback" not in proc.stderr


def test_recordings_readme_names_every_recording() -> None:
    readme = (RECORDINGS / "README.md").read_text()
    for path in sorted(RECORDINGS.glob("*.jsonl")):
        if path.name != "demo.jsonl":
            assert f"`{path.name}`" in readme, path.name
            assert path.stat().st_size < 200 * 1024, path.name
    assert json.loads((RECORDINGS / QUICK).read_text().splitlines()[0])["format"] == "widgetspy-session"
