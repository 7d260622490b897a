"""Time encodings: epoch seconds, milliseconds and microseconds, ISO text with or without an offset, and dates,
converted exact to the microsecond (vectorised), with each impossible value refused by row and named."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from upstreams import COLUMNS, dataset_yaml, make_repository, pipeline_yaml

from conftest import Runner
from kfm_gitops.normalize import convert_values


def times(values: list[str | None], encoding: str, zone: str = "UTC") -> tuple[list[object], list[bool]]:
    done = convert_values(pa.array(values, pa.string()), "timestamp", encoding, zone)
    return done.typed.to_pylist(), done.failed.tolist()


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
       ) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def test_epoch_milliseconds_are_exact() -> None:
    got, failed = times(["1688205600123", "1688205600123.5", "-1", "0", None, "1.6e12", "x", "+5"], "epoch_ms")
    assert got == [at(2023, 7, 1, 10, 0, 0, 123000), at(2023, 7, 1, 10, 0, 0, 123500), at(1969, 12, 31, 23, 59, 59,
                                                                                              999000),
                   at(1970, 1, 1), None, None, None, at(1970, 1, 1, 0, 0, 0, 5000)]
    assert failed == [False, False, False, False, False, True, True, False]


def test_epoch_seconds_and_microseconds() -> None:
    got, failed = times(["1688205600", "1688205600.000001", "1688205600.0000001", "1688205600.1000000"], "epoch_s")
    assert got == [at(2023, 7, 1, 10), at(2023, 7, 1, 10, 0, 0, 1), None, at(2023, 7, 1, 10, 0, 0, 100000)]
    assert failed == [False, False, True, False]  # a tenth of a microsecond cannot be kept exactly
    got, failed = times(["1688205600000001", "1688205600000001.0", "1688205600000001.5"], "epoch_us")
    assert got == [at(2023, 7, 1, 10, 0, 0, 1), at(2023, 7, 1, 10, 0, 0, 1), None] and failed[2]


def test_out_of_range_is_refused_by_row() -> None:
    done = convert_values(pa.array(["253402300799999", "253402300800000", "-62135596800000", "-62135596800001",
                                    "99999999999999999999"]), "timestamp", "epoch_ms")
    assert done.failed.tolist() == [False, True, False, True, True]
    assert [w for m, w in done.why if m.any()] == ["out of range"]
    assert done.typed.to_pylist()[0] == at(9999, 12, 31, 23, 59, 59, 999000)
    assert done.typed.to_pylist()[2] == at(1, 1, 1)


def test_local_times_and_dates_in_the_partitioning_zone() -> None:
    values = ["2023-07-01T10:00:00", "2023-07-01T10:00:00-05:00", "2023-03-12T02:30:00", "2023-11-05T01:30:00",
              "2023-02-30T00:00:00", "2023-07-01"]
    done = convert_values(pa.array(values), "timestamp", "iso8601_local", "America/Chicago")
    assert done.typed.to_pylist()[:4] == [at(2023, 7, 1, 15), at(2023, 7, 1, 15), None, at(2023, 11, 5, 6, 30)]
    assert done.failed.tolist() == [False, False, True, False, True, True]
    assert sorted(w for m, w in done.why if m.any()) == ["a local time that does not exist (clocks skip it)",
                                                        "out of range"]
    got, failed = times(["2023-07-01", "2023-07-01T00:00:00Z", "2023-13-01"], "date", "America/Chicago")
    assert got == [at(2023, 7, 1, 5), None, None] and failed == [False, True, True]


def test_native_parquet_numbers() -> None:
    from kfm_gitops.encodings import from_epoch_numbers

    ints = from_epoch_numbers(pa.array([1688205600123, -1, 2**62, None], pa.int64()), "epoch_ms")
    assert ints.typed.to_pylist() == [at(2023, 7, 1, 10, 0, 0, 123000), at(1969, 12, 31, 23, 59, 59, 999000), None,
                                      None]
    assert ints.failed.tolist() == [False, False, True, False]
    floats = from_epoch_numbers(pa.array([1688205600.123456, float("nan")]), "epoch_s")
    assert floats.typed.to_pylist() == [at(2023, 7, 1, 10, 0, 0, 123456), None]


EPOCH_COLUMNS = COLUMNS.replace("{name: time, type: timestamp, required: true}",
                                "{name: time, type: timestamp, required: true, encoding: epoch_ms}")


def test_a_wrong_encoding_names_the_column_and_types(tmp_path: Path, kfm: Runner,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from upstreams import backfill, collection, feature, run_folders

    root = tmp_path / "repo"
    data = collection([feature(None, [-117.5, 35.7, 1.0], event_id=f"e{i}", time=f"2023-07-0{i}T00:00:00Z")
                       for i in range(1, 4)])
    plan = make_repository(root, "quakes", dataset_yaml(columns=EPOCH_COLUMNS), pipeline_yaml(),
                           {"2023-07/a.geojson": data})
    monkeypatch.chdir(root)
    code, out = backfill(kfm, plan)
    assert code == 1
    assert "top reasons: time: expected timestamp (epoch_ms), found timestamp (3 rows)" in out
    qa = json.loads((run_folders(root, "quakes")[-1] / "qa.json").read_text())
    assert qa["checks"][0]["details"] == [{"column": "time", "detail": "expected timestamp (epoch_ms), found "
                                           "timestamp", "rows": 3}]


def test_an_int_time_column_says_how_to_declare_it(tmp_path: Path, kfm: Runner,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    columns = COLUMNS.replace("{name: time, type: timestamp, required: true}", "{name: time, type: int64}") + \
        "    - {name: depth, type: float64, encoding: epoch_s}\n"
    make_repository(root, "quakes", dataset_yaml(columns=columns), pipeline_yaml(), {})
    monkeypatch.chdir(root)
    r = kfm("dataset", "validate", "quakes")
    assert r.code == 1
    lines = r.out.splitlines()
    assert any(ln.startswith("datasets/quakes/dataset.yaml:") and "DATASET_TIME_COLUMN_TYPE" in ln
               and "encoding: epoch_s, epoch_ms or epoch_us" in ln for ln in lines), r.out
    assert any("DATASET_COLUMN_ENCODING: column 'depth' is float64, which cannot be read from epoch_s" in ln
               and "encoding is for timestamp and date columns" in ln for ln in lines), r.out


def test_whole_epoch_numbers_take_the_one_cast_path() -> None:
    got, failed = times(["1688205600123", "-1", "0012", None, "253402300800000"], "epoch_ms")
    assert got == [at(2023, 7, 1, 10, 0, 0, 123000), at(1969, 12, 31, 23, 59, 59, 999000), at(1970, 1, 1, 0, 0, 0,
                                                                                              12000), None, None]
    assert failed == [False, False, False, False, True]
