"""WORK, step two: quality checks over normalised batches (vectorised), thresholds from the contract, and the QA
report. A row that fails gets a reason and goes to QUARANTINE; a chunk over a threshold is quarantined whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kfm_gitops.normalize import REASONS, Causes

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

SAMPLE_IDS = 10


def instants(values: pa.ChunkedArray | pa.Array, zone: str) -> pa.Array:
    """Timestamps as UTC instants; a date is the local midnight that starts it in the partitioning's zone."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_date(values.type):
        local = pc.cast(values, pa.timestamp("us"))
        if zone not in ("UTC", "Etc/UTC"):
            local = pc.assume_timezone(local, timezone=zone, ambiguous="earliest", nonexistent="latest")
        return pc.cast(local, pa.timestamp("us", tz="UTC"))
    return values


def window_mask(table: pa.Table, axis: str, axes: dict[str, Any], start: datetime, end: datetime,
                zone: str = "UTC") -> np.ndarray:
    """Rows whose time-axis value falls outside the chunk window (valid_time: the interval does not overlap it).
    A null time is not decided here (the required-field check handles it)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    s = pa.scalar(start, pa.timestamp("us", tz="UTC"))
    e = pa.scalar(end, pa.timestamp("us", tz="UTC"))

    def ts(col: str) -> pa.Array:
        return instants(table.column(col), zone)

    if axis == "valid_time":
        lo, hi = ts(axes["valid_time"]["start_column"]), ts(axes["valid_time"]["end_column"])
        # [lo, hi) overlaps [s, e) unless it ends before the window starts or starts after it ends.
        outside = pc.or_(pc.less_equal(hi, s), pc.greater_equal(lo, e))
    else:
        t = ts(axes[axis]["column"])
        outside = pc.or_(pc.less(t, s), pc.greater_equal(t, e))
    return np.asarray(pc.fill_null(outside, False).to_numpy(zero_copy_only=False), dtype=bool)


def partition_start_column(table: pa.Table, axis: str, axes: dict[str, Any], zone: str = "UTC") -> pa.Array:
    """The instant that decides a row's partition: the time, or the start of a valid_time interval."""
    col = axes["valid_time"]["start_column"] if axis == "valid_time" else axes[axis]["column"]
    return instants(table.column(col), zone)


def gap_notes(keys: list[str], gaps: set[str], mode: str) -> list[str]:
    """Partitions of a window without data, one line per run of consecutive ones (``keys``: the window's
    partitions in order)."""
    runs: list[list[str]] = []
    for i, key in enumerate(keys):
        if key in gaps:
            if runs and i > 0 and keys[i - 1] == runs[-1][-1]:
                runs[-1].append(key)
            else:
                runs.append([key])
    return [f"gap: partition {run[0]} has no data in this window" if len(run) == 1 else
            f"gap: {run[0]} .. {run[-1]} ({len(run)} {mode} partitions) have no data in this window" for run in runs]


@dataclass(slots=True)
class QA:
    """Counts over a whole chunk, built batch by batch, on the rows that were read: the chunk's own rows (``total``:
    accepted plus quarantined), and apart from them the rows its objects hold for other chunks."""

    columns: list[str]
    causes: Causes = field(default_factory=Causes)
    total: int = 0
    by_cause: dict[int, int] = field(default_factory=dict)
    samples: dict[str, list[str]] = field(default_factory=dict)
    nulls: dict[str, int] = field(default_factory=dict)  # rows whose source had no value, per contract column
    accepted: int = 0
    elsewhere: int = 0  # rows read here that another chunk of the plan publishes or quarantines
    suppressed: int | None = None  # accepted rows that min_count_threshold keeps out (None: no such obligation)

    def add(self, ids: pa.Array, codes: np.ndarray, absent: dict[str, np.ndarray], accepted: int) -> None:
        """Count a batch of this chunk's rows: their ids, causes (0: none) and absent values; ``accepted`` of them
        passed."""
        import numpy as np

        self.total += len(codes)
        for code in np.unique(codes).tolist():
            if code == 0:
                continue
            where = np.nonzero(codes == code)[0]
            self.by_cause[code] = self.by_cause.get(code, 0) + len(where)
            sample = self.samples.setdefault(self.causes[code].reason, [])
            for i in where[: max(0, SAMPLE_IDS - len(sample))]:
                value = ids[int(i)].as_py()
                sample.append(str(value) if value is not None else "(no id)")
        self.accepted += accepted
        for name in self.columns:
            self.nulls[name] = self.nulls.get(name, 0) + int(np.count_nonzero(absent[name]))

    def move(self, code: int, count: int) -> None:
        """Rows found bad after they were counted as accepted (duplicates, found at the end of the chunk)."""
        self.by_cause[code] = self.by_cause.get(code, 0) + count
        self.accepted -= count

    def top(self, limit: int = 3) -> list[str]:
        """The most frequent causes, as `column: detail (n rows)`."""
        ranked = sorted(self.by_cause.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [f"{self.causes[code].text()} ({n} row{'s' if n != 1 else ''})" for code, n in ranked]

    def checks(self) -> list[dict[str, Any]]:
        """Per reason: the rows that failed, sample ids, and the rows per column with what was wrong."""
        out = []
        for reason in REASONS:
            mine = sorted(((c, n) for c, n in self.by_cause.items() if self.causes[c].reason == reason),
                          key=lambda cn: (-cn[1], self.causes[cn[0]].column, self.causes[cn[0]].detail))
            columns: dict[str, int] = {}
            for code, n in mine:
                columns[self.causes[code].column] = columns.get(self.causes[code].column, 0) + n
            out.append({"reason": reason, "failed": sum(n for _, n in mine),
                        "sample_ids": self.samples.get(reason, [])[:SAMPLE_IDS],
                        "columns": dict(sorted(columns.items())),
                        "details": [{"column": self.causes[c].column, "detail": self.causes[c].detail, "rows": n}
                                    for c, n in mine]})
        return out

    def report(self, qa_rules: dict[str, Any], slug: str, chunk: str) -> dict[str, Any]:
        quarantined = self.total - self.accepted
        ratio = quarantined / self.total if self.total else 0.0
        failures: list[str] = []
        max_invalid = qa_rules.get("max_invalid_ratio")
        if max_invalid is not None and ratio > max_invalid:
            failures.append(f"{quarantined} of {self.total} rows ({ratio:.1%}) failed checks; the contract allows "
                            f"{max_invalid:.1%}")
        min_rows = qa_rules.get("min_rows")
        if self.total and min_rows is not None and self.accepted < min_rows:
            failures.append(f"{self.accepted} rows passed; the contract needs at least {min_rows}")
        # Nulls among the rows read: a column missing from the source is all null, whatever became of the rows.
        null_ratio = {c: self.nulls.get(c, 0) / self.total for c in self.columns} if self.total else {}
        for col, limit in sorted(qa_rules.get("max_null_ratio", {}).items()):
            if null_ratio.get(col, 0.0) > limit:
                failures.append(f"column {col} is {null_ratio[col]:.1%} null; the contract allows {limit:.1%}")
        return {
            "kfm_qa_report_version": "v1",
            "dataset_slug": slug,
            "chunk": chunk,
            "rows": {"total": self.total, "accepted": self.accepted, "quarantined": quarantined,
                     "other_chunks": self.elsewhere,
                     **({"suppressed": self.suppressed} if self.suppressed is not None else {})},
            "checks": self.checks(),
            "invalid_ratio": round(ratio, 6),
            "null_ratio": {k: round(v, 6) for k, v in sorted(null_ratio.items())},
            "thresholds": {k: qa_rules[k] for k in sorted(qa_rules)},
            "threshold_failures": failures,
            "status": "fail" if failures else "pass",
        }
