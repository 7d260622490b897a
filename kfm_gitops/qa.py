"""WORK, step two: quality checks over normalised batches (vectorised), thresholds from the contract, and the QA
report. A row that fails gets a reason and goes to QUARANTINE; a chunk over a threshold is quarantined whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kfm_gitops.normalize import REASONS

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


@dataclass(slots=True)
class QA:
    """Counts over a whole chunk, built batch by batch."""

    columns: list[str]
    total: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[str]] = field(default_factory=dict)
    nulls: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    elsewhere: int = 0  # valid_time rows whose interval starts in another chunk: that chunk publishes them

    def add(self, table: pa.Table, reasons: np.ndarray, id_column: str, accepted: pa.Table) -> None:
        """Count a batch: ``table`` all its rows, ``accepted`` those without a reason."""
        import numpy as np

        self.total += len(reasons)
        ids = table.column(id_column)
        for code_index in np.unique(reasons):
            if code_index == 0:
                continue
            code = REASONS[int(code_index) - 1]
            where = np.nonzero(reasons == code_index)[0]
            self.by_reason[code] = self.by_reason.get(code, 0) + len(where)
            sample = self.samples.setdefault(code, [])
            for i in where[: max(0, SAMPLE_IDS - len(sample))]:
                value = ids[int(i)].as_py()
                sample.append(str(value) if value is not None else "(no id)")
        self.accepted += accepted.num_rows
        for name in self.columns:
            self.nulls[name] = self.nulls.get(name, 0) + accepted.column(name).null_count

    def move(self, code_from_index: int, count: int) -> None:
        """Rows found bad after they were counted as accepted (duplicates, found at the end of the chunk)."""
        code = REASONS[code_from_index - 1]
        self.by_reason[code] = self.by_reason.get(code, 0) + count
        self.accepted -= count

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
        null_ratio = {c: (self.nulls.get(c, 0) / self.accepted if self.accepted else 0.0) for c in self.columns}
        for col, limit in sorted(qa_rules.get("max_null_ratio", {}).items()):
            if null_ratio.get(col, 0.0) > limit:
                failures.append(f"column {col} is {null_ratio[col]:.1%} null; the contract allows {limit:.1%}")
        checks = [{"reason": code, "failed": self.by_reason.get(code, 0),
                   "sample_ids": self.samples.get(code, [])[:SAMPLE_IDS]} for code in REASONS]
        return {
            "kfm_qa_report_version": "v1",
            "dataset_slug": slug,
            "chunk": chunk,
            "rows": {"total": self.total, "accepted": self.accepted, "quarantined": quarantined,
                     "other_chunks": self.elsewhere},
            "checks": checks,
            "invalid_ratio": round(ratio, 6),
            "null_ratio": {k: round(v, 6) for k, v in sorted(null_ratio.items())},
            "thresholds": {k: qa_rules[k] for k in sorted(qa_rules)},
            "threshold_failures": failures,
            "status": "fail" if failures else "pass",
        }
