"""The one exit path: exit codes, output formats, --debug, interrupts, usage errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLES, Runner, venv_bin
from kfm_gitops.cli._output import Summary, TextReporter
from kfm_gitops.findings import Finding, Location, Report, github_annotation, summary


def test_version(kfm: Runner) -> None:
    r = kfm("--version")
    assert r.code == 0
    assert r.out.startswith("kfm, version ")


def test_usage_error_is_exit_2(kfm: Runner) -> None:
    r = kfm("plan", "validate", "--format", "xml", "x.yml")
    assert r.code == 2
    assert "Invalid value for '--format'" in r.err


def test_unknown_command_is_exit_2(kfm: Runner) -> None:
    r = kfm("plann")
    assert r.code == 2
    assert "No such command 'plann'" in r.err


def test_json_format(kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES)
    r = kfm("plan", "validate", "--standalone", "--format", "json", "invalid/unknown-label.yml", "valid/minimal.yml")
    assert r.code == 1
    doc = json.loads(r.out)
    assert doc["ok"] is False
    assert doc["checked"] == ["invalid/unknown-label.yml", "valid/minimal.yml"]
    assert doc["findings"] == [{
        "code": "POLICY_UNKNOWN_LABEL", "severity": "error",
        "message": "policy label 'top_secret' is not in the vocabulary",
        "path": "invalid/unknown-label.yml", "line": 10, "col": 17,
        "hint": "known labels: public, public_generalized, internal, restricted, restricted_sensitive_location, "
                "embargoed, quarantine",
    }]


def test_github_format(kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES)
    r = kfm("plan", "validate", "--standalone", "--format", "github", "invalid/reviewer-is-requester.yml")
    assert r.code == 1
    assert r.out.splitlines()[0] == (
        "::error file=invalid/reviewer-is-requester.yml,line=4,col=12,title=PLAN_REVIEWERS::"
        "the only reviewer is the requester (hint: name a steward other than the requester)"
    )


def test_github_format_writes_a_step_summary(kfm: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.chdir(EXAMPLES)
    assert kfm("plan", "validate", "--standalone", "--format", "text", "invalid/reviewer-is-requester.yml").code == 1
    assert summary.read_text() == "earlier step\n", "only --format github writes the step summary"
    assert kfm("plan", "validate", "--standalone", "--format", "github", "invalid/reviewer-is-requester.yml").code == 1
    assert kfm("plan", "validate", "--standalone", "--format", "github", "valid/minimal.yml").code == 0
    assert summary.read_text() == (
        "earlier step\n"
        "### kfm: 1 plan checked, 1 error (failed)\n\n"
        "| where | code | severity | message |\n| --- | --- | --- | --- |\n"
        "| invalid/reviewer-is-requester.yml:4:12 | PLAN_REVIEWERS | error | the only reviewer is the requester "
        "(name a steward other than the requester) |\n\n"
        "### kfm: 1 plan valid (passed)\n\n\n"
    )


def test_github_annotation_escapes() -> None:
    f = Finding("X", "50% done\nnext line", Location("a,b:c.yml", 3, 4))
    assert github_annotation(f) == "::error file=a%2Cb%3Ac.yml,line=3,col=4,title=X::50%25 done%0Anext line"


def test_a_report_that_checked_nothing_fails() -> None:
    report = Report()
    assert not report.ok
    assert summary(report, "plan") == "no plan checked: nothing to validate is a failure"


def test_warnings_do_not_fail(capsys: pytest.CaptureFixture[str]) -> None:
    report = Report(["a.yml"], [Finding("W", "careful", Location("a.yml", 1, 1), severity="warning")])
    assert report.ok
    TextReporter().emit(report, Summary("plan"))
    assert capsys.readouterr().out.splitlines() == ["a.yml:1:1: warning: W: careful", "1 plan valid"]


def test_the_summary_line_takes_the_verb() -> None:
    one, two = Report(["a"]), Report(["a", "b"])
    assert summary(one, "policy case", ("passes", "pass")) == "1 policy case passes"
    assert summary(two, "policy case", ("passes", "pass")) == "2 policy cases pass"
    assert summary(two, "chunk", "acquired") == "2 chunks acquired"
    assert Summary("chunk", "acquired", detail=" (in 3 s)").line(two) == "2 chunks acquired (in 3 s)"


def test_internal_error_is_exit_3_without_traceback(kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    import kfm_gitops.plan

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(kfm_gitops.plan, "check_plan", boom)
    monkeypatch.chdir(EXAMPLES)
    r = kfm("plan", "validate", "--standalone", "valid/minimal.yml")
    assert r.code == 3
    assert r.err == (
        "kfm: internal error: RuntimeError: disk on fire\n"
        "  hint: re-run with --debug for a traceback, and report it\n"
    )
    r = kfm("--debug", "plan", "validate", "--standalone", "valid/minimal.yml")
    assert r.code == 3
    assert "Traceback (most recent call last)" in r.err
    r = kfm("plan", "validate", "--standalone", "valid/minimal.yml", "--debug")
    assert (r.code, "Traceback (most recent call last)" in r.err) == (3, True)


def test_after_a_double_dash_debug_is_a_file_name(kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES)
    r = kfm("plan", "validate", "--standalone", "--", "--debug")
    assert r.code == 1
    assert r.out.startswith("--debug: FILE_NOT_FOUND: no such file")


def test_interrupt_is_exit_130(kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    import kfm_gitops.plan

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(kfm_gitops.plan, "check_plan", interrupted)
    monkeypatch.chdir(EXAMPLES)
    r = kfm("plan", "validate", "--standalone", "valid/minimal.yml")
    assert r.code == 130
    assert r.err.strip() == "kfm: interrupted; run the same command again to resume (nothing half-written was kept)"


def test_console_script_exit_codes(tmp_path: Path) -> None:
    """The installed `kfm` executable, as a hook runs it: same codes, no traceback."""
    exe = venv_bin() / "kfm"
    bad = tmp_path / "bad.yml"
    bad.write_text("dataset_slug: [\n")
    done = subprocess.run([str(exe), "plan", "validate", "--standalone", str(bad)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "YAML_SYNTAX" in done.stdout
    assert "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, "-m", "kfm_gitops", "plan", "validate", "--standalone",
                           str(EXAMPLES / "valid" / "minimal.yml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("1 plan valid\n")


def test_sigint_exits_130(tmp_path: Path) -> None:
    """A real Ctrl-C (SIGINT) while kfm runs ends with 130 and a one-line message."""
    import signal
    import time

    script = (
        # A shell that starts jobs in the background (as CI may) leaves SIGINT ignored: restore Python's handler.
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import time, kfm_gitops.plan\n"
        "def slow(*a, **k):\n"
        "    print('ready', flush=True); time.sleep(30)\n"
        "kfm_gitops.plan.check_plan = slow\n"
        "from kfm_gitops.cli import main\n"
        f"raise SystemExit(main(['plan', 'validate', '--standalone', {str(tmp_path / 'x.yml')!r}]))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert err.strip() == "kfm: interrupted; run the same command again to resume (nothing half-written was kept)"


def test_missing_file_directory_and_unreadable_are_findings(kfm: Runner, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    os.mkfifo(tmp_path / "fifo.yml")  # reading it would block for ever: kfm must not try
    r = kfm("plan", "validate", "--standalone", "nope.yml", "adir", "fifo.yml")
    assert r.code == 1
    lines = r.out.splitlines()
    assert lines[0] == "nope.yml: FILE_NOT_FOUND: no such file (hint: check the path)"
    assert lines[1] == "adir: FILE_IS_DIRECTORY: is a directory, not a file (hint: pass the file inside it)"
    assert lines[2] == "fifo.yml: FILE_UNREADABLE: not a regular file"
    assert lines[-1] == "3 plans checked, 3 errors"


def test_help_listings_are_never_cut(kfm: Runner) -> None:
    from kfm_gitops.cli import cli

    groups: list[list[str]] = [[]] + [[name] for name, command in cli.commands.items() if hasattr(command, "commands")]
    assert len(groups) > 4
    for words in groups:
        r = kfm(*words, "--help")
        assert r.code == 0
        listing = r.out.split("Commands:\n", 1)[1].splitlines()
        assert listing and not [line for line in listing if line.rstrip().endswith("...")], (words, listing)
