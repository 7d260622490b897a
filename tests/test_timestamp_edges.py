"""Timestamps at the edges: instants near the ends of the calendar, offsets past a day, more than microsecond
precision, and dates without an offset. Each is a located finding (exit 1) in a plan, or a usage error (exit 2) on
the command line; never an internal error, and never a value silently changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Runner

PLAN = "plans/ks_storm_reports/backfill-20230705-0c1d2e.yml"
START = 'start: "2023-01-01T00:00:00Z"'
END = 'end: "2023-07-01T00:00:00Z"'
RANGE = "(0002-01-01T00:00:00Z..9998-12-31T00:00:00Z)"

# (the line replaced in the governed repository's plan, its replacement, line:col of the value, the message)
REFUSED = [
    pytest.param(END, 'end: "9999-12-31T23:00:00-05:00"', "15:8",
                 f"'9999-12-31T23:00:00-05:00' is out of the supported range {RANGE}", id="end-past-year-9999"),
    pytest.param(START, 'start: "0001-01-01T00:00:00+05:00"', "14:10",
                 f"'0001-01-01T00:00:00+05:00' is out of the supported range {RANGE}", id="start-before-year-1"),
    pytest.param(START, 'start: "2023-01-01T00:00:00+25:00"', "14:10",
                 "'2023-01-01T00:00:00+25:00': offset +25:00 is out of range (-23:59..+23:59)", id="offset-25h"),
    pytest.param(START, 'start: "2023-01-01T00:00:00.000000001Z"', "14:10",
                 "'2023-01-01T00:00:00.000000001Z' is more precise than a microsecond (at most 6 fractional digits)",
                 id="nanoseconds"),
]


def edit(governed: Path, old: str, new: str) -> None:
    path = governed / PLAN
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("command", [("plan", "validate"), ("plan", "chunks"), ("backfill", "matrix"),
                                     ("backfill", "run", "--dry-run")], ids=" ".join)
@pytest.mark.parametrize(("old", "new", "where", "message"), REFUSED)
def test_a_timestamp_kfm_cannot_hold_is_a_located_finding(governed: Path, kfm: Runner, command: tuple[str, ...],
                                                          old: str, new: str, where: str, message: str) -> None:
    edit(governed, old, new)
    r = kfm(*command, PLAN)
    assert r.code == 1, r.err
    assert f"{PLAN}:{where}: PLAN_TIMESTAMP: {message}" in [s.strip() for s in (r.out + r.err).splitlines()]
    assert "internal error" not in r.err and "timedelta" not in r.out + r.err


@pytest.mark.parametrize(("old", "new", "where", "message"), REFUSED)
def test_standalone_validation_refuses_them_too(tmp_path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch,
                                                old: str, new: str, where: str, message: str) -> None:
    from kfm_gitops.example import repository_files

    text = repository_files()[PLAN].decode()
    monkeypatch.chdir(tmp_path)
    Path("plan.yml").write_text(text.replace(old, new, 1))
    r = kfm("plan", "validate", "--standalone", "plan.yml")
    assert r.code == 1
    assert r.out == f"plan.yml:{where}: PLAN_TIMESTAMP: {message}\n1 plan checked, 1 error\n"
    assert r.err == ""


def test_a_fraction_of_a_second_is_shown_as_written(governed: Path, kfm: Runner) -> None:
    edit(governed, END, 'end: "2023-06-30T23:59:59.999999Z"')
    r = kfm("plan", "validate", PLAN)
    assert r.code == 1
    assert r.out.splitlines()[0] == (
        f"{PLAN}:15:8: PLAN_WINDOW_NOT_ALIGNED: window.end 2023-06-30T23:59:59.999999Z is not on a monthly partition "
        "boundary in UTC (hint: use 2023-06-01T00:00:00Z or 2023-07-01T00:00:00Z)")


def test_a_hint_never_suggests_an_instant_out_of_range(governed: Path, kfm: Runner) -> None:
    edit(governed, START, 'start: "9998-06-01T00:00:00Z"')
    edit(governed, END, 'end: "9998-12-31T00:00:00Z"')
    r = kfm("plan", "validate", PLAN)
    assert r.code == 1
    assert r.out.splitlines()[0] == (
        f"{PLAN}:15:8: PLAN_WINDOW_NOT_ALIGNED: window.end 9998-12-31T00:00:00Z is not on a monthly partition "
        "boundary in UTC (hint: use 9998-12-01T00:00:00Z)")


@pytest.mark.parametrize("key", ["9999-12", "0001-01"])
def test_an_expected_output_past_the_range_is_outside_the_window(governed: Path, kfm: Runner, key: str) -> None:
    edit(governed, "  missing_intervals: []", f"  missing_intervals: []\nexpected_outputs:\n  - partition: \"{key}\"")
    r = kfm("plan", "validate", PLAN)
    assert r.code == 1, r.err
    assert r.out.splitlines()[0].endswith(f": PLAN_EXPECTED_OUTPUT: partition {key} is outside the window")


NEW = ("plan", "new", "ks_storm_reports", "--chunking", "monthly", "--reason", "x", "--window")


@pytest.mark.parametrize(("window", "message"), [
    ("2023-03-01/2023-04-01", "kfm: --window: '2023-03-01' is a date with no time and no UTC offset: timestamps "
                              "need an explicit offset\n  hint: write 2023-03-01T00:00:00Z for UTC, or the offset "
                              "you mean, as in 2023-03-01T00:00:00-06:00\n"),
    ("2023-03-01T00:00:00Z/2023-04-01", "kfm: --window: '2023-04-01' is a date with no time and no UTC offset: "
                                        "timestamps need an explicit offset\n  hint: write 2023-04-01T00:00:00Z for "
                                        "UTC, or the offset you mean, as in 2023-04-01T00:00:00-06:00\n"),
    ("2023-03-01T00:00:00Z/9999-12-31T23:00:00-05:00",
     f"kfm: --window: '9999-12-31T23:00:00-05:00' is out of the supported range {RANGE}\n"
     "  hint: e.g. --window 2023-01-01T00:00:00Z/2023-04-01T00:00:00Z\n"),
    ("0001-01-01T00:00:00+05:00/2023-04-01T00:00:00Z",
     f"kfm: --window: '0001-01-01T00:00:00+05:00' is out of the supported range {RANGE}\n"
     "  hint: e.g. --window 2023-01-01T00:00:00Z/2023-04-01T00:00:00Z\n"),
    ("2023-03-01T00:00:00+25:00/2023-04-01T00:00:00Z",
     "kfm: --window: '2023-03-01T00:00:00+25:00': offset +25:00 is out of range (-23:59..+23:59)\n"
     "  hint: e.g. --window 2023-01-01T00:00:00Z/2023-04-01T00:00:00Z\n"),
    ("2023-03-01T00:00:00.000000001Z/2023-04-01T00:00:00Z",
     "kfm: --window: '2023-03-01T00:00:00.000000001Z' is more precise than a microsecond (at most 6 fractional "
     "digits)\n  hint: e.g. --window 2023-01-01T00:00:00Z/2023-04-01T00:00:00Z\n"),
])
def test_plan_new_refuses_a_window_it_cannot_take_as_written(governed: Path, kfm: Runner, window: str,
                                                             message: str) -> None:
    r = kfm(*NEW, window)
    assert r.code == 2
    assert r.out == ""
    assert r.err == message
    assert sorted(p.name for p in (governed / "plans/ks_storm_reports").iterdir()) == [Path(PLAN).name]


def test_plan_new_writes_the_window_as_given(governed: Path, kfm: Runner) -> None:
    r = kfm(*NEW, "2023-03-01T00:00:00.000Z/2023-03-31T19:00:00-05:00")  # whole months, written unusually
    assert r.code == 0, r.err
    text = (governed / r.out.splitlines()[0].removeprefix("wrote ")).read_text()
    assert '  start: "2023-03-01T00:00:00Z"\n  end: "2023-03-31T19:00:00-05:00"\n' in text


def test_plan_new_refuses_a_window_off_the_partitions_before_writing(governed: Path, kfm: Runner) -> None:
    r = kfm(*NEW, "2023-03-01T00:00:00.5Z/2023-03-31T19:00:00.000001-05:00")
    assert r.code == 1
    assert r.out == ""
    assert r.err == (
        "kfm: refusing to write a plan whose chunks would not cover whole partitions: nothing written\n"
        "  --window: PLAN_WINDOW_NOT_ALIGNED: window.start 2023-03-01T00:00:00.5Z is not on a monthly partition "
        "boundary in UTC (hint: the nearest window that covers whole partitions: --window "
        "2023-03-01T00:00:00Z/2023-05-01T00:00:00Z)\n"
        "  --window: PLAN_WINDOW_NOT_ALIGNED: window.end 2023-04-01T00:00:00.000001Z is not on a monthly partition "
        "boundary in UTC (hint: the nearest window that covers whole partitions: --window "
        "2023-03-01T00:00:00Z/2023-05-01T00:00:00Z)\n")
    assert sorted(p.name for p in (governed / "plans/ks_storm_reports").iterdir()) == [Path(PLAN).name]
    r = kfm("plan", "new", "ks_storm_reports", "--window", "2023-03-01T00:00:00Z/2023-04-01T00:00:00Z",
            "--chunking", "daily", "--reason", "x")
    assert r.code == 1
    assert "--chunking: PLAN_CHUNKING_TOO_FINE: daily chunks do not cover whole monthly partitions (hint: use " \
           "monthly chunking or coarser)" in r.err
    assert sorted(p.name for p in (governed / "plans/ks_storm_reports").iterdir()) == [Path(PLAN).name]
