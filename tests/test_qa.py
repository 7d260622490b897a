"""QA checks as vectorised functions: the chunk window on each time axis, and thresholds."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from kfm_gitops.qa import QA, window_mask

START, END = datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 4, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def t(s: str | None) -> datetime | None:
    return None if s is None else datetime.fromisoformat(s)


def test_event_time_is_half_open() -> None:
    times = ["2023-02-28T23:59:59+00:00", "2023-03-01T00:00:00+00:00", "2023-03-31T23:59:59+00:00",
             "2023-04-01T00:00:00+00:00", None]
    table = pa.table({"when": pa.array([t(s) for s in times], TS)})
    mask = window_mask(table, "event_time", {"event_time": {"column": "when"}}, START, END)
    assert mask.tolist() == [True, False, False, True, False]


def test_valid_time_overlaps() -> None:
    intervals = [("2023-01-01", "2023-03-01"),  # ends where the window starts: no overlap
                 ("2023-01-01", "2023-03-02"),  # overlaps the start
                 ("2023-03-10", "2023-03-11"),  # inside
                 ("2023-03-31", "2023-05-01"),  # overlaps the end
                 ("2023-04-01", "2023-05-01"),  # starts where the window ends: no overlap
                 ("2022-01-01", "2024-01-01")]  # covers it
    table = pa.table({
        "vf": pa.array([t(a + "T00:00:00+00:00") for a, _ in intervals], TS),
        "vt": pa.array([t(b + "T00:00:00+00:00") for _, b in intervals], TS),
    })
    axes = {"valid_time": {"start_column": "vf", "end_column": "vt"}}
    assert window_mask(table, "valid_time", axes, START, END).tolist() == [True, False, False, False, True, False]


def test_thresholds_decide_the_status() -> None:
    import numpy as np

    from kfm_gitops.normalize import Causes

    causes = Causes()
    bad = causes.code("SCHEMA_INVALID", "magnitude", "expected float64, found string")
    qa = QA(["id", "magnitude"], causes)
    ids = pa.array(["a", "b", "c", "d"])
    # Nulls are counted on every row read: the quarantined row "c" has no magnitude either.
    absent = {"id": np.array([False] * 4), "magnitude": np.array([False, True, True, False])}
    qa.add(ids, np.array([0, 0, bad, 0], dtype=np.int32), absent, 3)
    report = qa.report({"max_invalid_ratio": 0.3, "min_rows": 3, "max_null_ratio": {"magnitude": 0.3}}, "x", "2023-03")
    assert report["rows"] == {"total": 4, "accepted": 3, "quarantined": 1, "other_chunks": 0}
    assert report["checks"][0] == {"reason": "SCHEMA_INVALID", "failed": 1, "sample_ids": ["c"],
                                   "columns": {"magnitude": 1},
                                   "details": [{"column": "magnitude", "detail": "expected float64, found string",
                                                "rows": 1}]}
    assert report["null_ratio"] == {"id": 0.0, "magnitude": 0.5}
    assert report["threshold_failures"] == ["column magnitude is 50.0% null; the contract allows 30.0%"]
    assert report["status"] == "fail"
    assert qa.top() == ["magnitude: expected float64, found string (1 row)"]
    ok = qa.report({"max_invalid_ratio": 0.3, "min_rows": 3}, "x", "2023-03")
    assert ok["status"] == "pass"
    strict = qa.report({"max_invalid_ratio": 0.2, "min_rows": 4}, "x", "2023-03")
    assert strict["threshold_failures"] == [
        "1 of 4 rows (25.0%) failed checks; the contract allows 20.0%",
        "3 rows passed; the contract needs at least 4"]


def test_a_chunk_quarantined_whole_still_reports_its_nulls() -> None:
    """A column missing from every row is all null, though no row was accepted."""
    import numpy as np

    from kfm_gitops.normalize import Causes

    causes = Causes()
    bad = causes.code("SCHEMA_INVALID", "time", "expected timestamp, found int64")
    qa = QA(["id", "time", "felt"], causes)
    absent = {"id": np.zeros(5, dtype=bool), "time": np.zeros(5, dtype=bool), "felt": np.ones(5, dtype=bool)}
    qa.add(pa.array(list("abcde")), np.full(5, bad, dtype=np.int32), absent, 0)
    report = qa.report({}, "x", "2023-03")
    assert report["null_ratio"] == {"felt": 1.0, "id": 0.0, "time": 0.0}
    assert report["invalid_ratio"] == 1.0
    assert qa.top() == ["time: expected timestamp, found int64 (5 rows)"]


def test_gaps_are_intervals() -> None:
    from kfm_gitops.qa import gap_notes

    days = [f"2018-01-{d:02d}" for d in range(1, 32)]
    assert gap_notes(days, set(days[:30]), "daily") == [
        "gap: 2018-01-01 .. 2018-01-30 (30 daily partitions) have no data in this window"]
    assert gap_notes(days, {days[2], days[4], days[5], days[30]}, "daily") == [
        "gap: partition 2018-01-03 has no data in this window",
        "gap: 2018-01-05 .. 2018-01-06 (2 daily partitions) have no data in this window",
        "gap: partition 2018-01-31 has no data in this window"]
    assert gap_notes(days, set(), "daily") == []
