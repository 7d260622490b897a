"""How a source writes the values of a time column, as a contract column's ``encoding`` declares it, converted to
UTC instants exact to the microsecond, vectorised in pyarrow compute (no per-row loop on valid data):

- ``iso8601`` (a timestamp's default): ISO 8601 text with an explicit UTC offset; a value without one is refused;
- ``iso8601_local``: ISO 8601 text, and a value without an offset is local time in the partitioning's timezone
  (an ambiguous time, at the end of summer time, is the earlier instant; a time that does not exist is refused);
- ``date``: a calendar date, ``YYYY-MM-DD``; for a timestamp, the local midnight that starts it;
- ``epoch_s``, ``epoch_ms``, ``epoch_us``: a number of seconds, milliseconds or microseconds since
  1970-01-01T00:00:00Z, written as an integer or a decimal (digits beyond the microsecond must be zeros).

Every value must fall in the years 1 to 9999; one that does not is out of range, refused with its row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

TIME_ENCODINGS = ("iso8601", "iso8601_local", "date", "epoch_s", "epoch_ms", "epoch_us")
DEFAULT_ENCODING = {"timestamp": "iso8601", "date": "date"}
# The encodings each time type can be read from.
ENCODINGS_OF = {"timestamp": TIME_ENCODINGS, "date": ("date",)}
_FRACTION_DIGITS = {"epoch_s": 6, "epoch_ms": 3, "epoch_us": 0}  # digits of a unit that are microseconds
_INT_DIGITS = {"epoch_s": 12, "epoch_ms": 15, "epoch_us": 18}  # more cannot be a year before 10000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
CLOCK = r"[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
OFFSET_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}" + CLOCK + r"(Z|[+-][0-9]{2}:?[0-9]{2})$"
NAIVE_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}" + CLOCK + "$"


@dataclass(frozen=True, slots=True)
class Converted:
    """A converted column: the typed values (null where a value failed), the failures (a value present but not
    convertible), and among them those shaped right but impossible (out of range), each with why."""

    typed: pa.Array
    failed: np.ndarray
    impossible: np.ndarray
    why: tuple[tuple[np.ndarray, str], ...] = ()  # impossible rows by reason: (mask, "out of range")


def _mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    import numpy as np
    import pyarrow.compute as pc

    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def from_epoch(values: pa.Array, encoding: str) -> Converted:
    """Epoch numbers written as text (an integer or a decimal) to instants."""
    import pyarrow as pa
    import pyarrow.compute as pc

    digits = _FRACTION_DIGITS[encoding]
    whole_numbers = pc.match_substring_regex(values, f"^-?[0-9]{{1,{_INT_DIGITS[encoding]}}}$")  # Arrow: no "+"
    if pc.all(pc.or_kleene(whole_numbers, pc.is_null(values))).as_py() is not False:
        return _from_integers(pc.cast(values, pa.int64()), 10 ** digits)  # the common case: one cast
    parts = pc.extract_regex(values, r"^(?P<sign>[+-]?)(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?$")
    shaped = _mask(pc.is_valid(parts))
    whole = pc.utf8_ltrim(pc.struct_field(parts, "int"), characters="0")
    fraction = pc.struct_field(parts, "frac")
    fits = _mask(pc.less_equal(pc.utf8_length(whole), _INT_DIGITS[encoding])) & shaped
    beyond = pc.utf8_slice_codeunits(fraction, digits, 64)
    exact = _mask(pc.match_substring_regex(beyond, "^0*$")) & shaped
    safe = fits & exact
    ints = pc.cast(pc.if_else(pa.array(safe), pc.if_else(pc.equal(whole, ""), "0", whole), "0"), pa.int64())
    micros = pc.multiply(ints, 10 ** digits)
    if digits:
        kept = pc.utf8_rpad(pc.utf8_slice_codeunits(fraction, 0, digits), width=digits, padding="0")
        micros = pc.add(micros, pc.cast(pc.if_else(pa.array(safe), kept, "0"), pa.int64()))
    micros = pc.if_else(pc.equal(pc.struct_field(parts, "sign"), "-"), pc.negate(micros), micros)
    in_range = _mask(pc.and_(pc.greater_equal(micros, MIN_US), pc.less_equal(micros, MAX_US))) & safe
    good = in_range
    typed = pc.cast(pc.if_else(pa.array(good), micros, pa.scalar(None, pa.int64())), pa.timestamp("us", tz="UTC"))
    present = _mask(pc.is_valid(values))
    finer = shaped & fits & ~exact
    outside = shaped & ~in_range & ~finer
    return Converted(typed, present & ~good, shaped & ~good,
                     ((outside, "out of range"), (finer, "finer than a microsecond")))


def _from_integers(ints: pa.Array, scale: int) -> Converted:
    """Whole epoch numbers (int64) in units of 1/``scale`` seconds to instants, those out of range refused."""
    import pyarrow as pa
    import pyarrow.compute as pc

    present = _mask(pc.is_valid(ints))
    fits = pc.and_(pc.greater_equal(ints, -(-MIN_US // scale)), pc.less_equal(ints, MAX_US // scale))
    good = present & _mask(fits)
    micros = pc.multiply(pc.if_else(pa.array(good), ints, 0), scale)
    typed = pc.cast(pc.if_else(pa.array(good), micros, pa.scalar(None, pa.int64())), pa.timestamp("us", tz="UTC"))
    bad = present & ~good
    return Converted(typed, bad, bad, ((bad, "out of range"),))


def from_epoch_numbers(values: pa.Array, encoding: str) -> Converted:
    """Epoch numbers of a typed source (Parquet integers or floats) to instants; a float is rounded to the
    nearest microsecond, as exact as the float itself."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    scale = 10 ** _FRACTION_DIGITS[encoding]
    present = _mask(pc.is_valid(values))
    if pa.types.is_integer(values.type):  # integers stay exact: no detour through float
        return _from_integers(pc.cast(values, pa.int64()), scale)
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            numbers = np.asarray(pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
            micros_f = np.round(numbers * scale)
            good = present & np.isfinite(micros_f) & (micros_f >= MIN_US) & (micros_f <= MAX_US)
        micros = pa.array(np.where(good, micros_f, 0).astype(np.int64))
    typed = pc.cast(pc.if_else(pa.array(good), micros, pa.scalar(None, pa.int64())), pa.timestamp("us", tz="UTC"))
    bad = present & ~good
    return Converted(typed, bad, bad, ((bad, "out of range"),))


def from_local(values: pa.Array, encoding: str, zone: str, with_offset: Converted | None) -> Converted:
    """Local times (iso8601_local: ISO text without an offset; date: a calendar date) in ``zone``, merged with
    ``with_offset``, the same column read as ISO text with an offset (None: no value may have one)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    local = _mask(pc.match_substring_regex(values, DATE if encoding == "date" else NAIVE_TIMESTAMP))
    clean = pc.if_else(pa.array(local), values, pa.scalar(None, pa.string()))
    if encoding == "date":
        naive, impossible = cast_each(clean, pa.date32())
        naive = pc.cast(pc.cast(naive, pa.date32()), pa.timestamp("us"))
    else:
        naive, impossible = cast_each(clean, pa.timestamp("us"))
    early = pc.assume_timezone(naive, timezone=zone, ambiguous="earliest", nonexistent="earliest")
    late = pc.assume_timezone(naive, timezone=zone, ambiguous="earliest", nonexistent="latest")
    gap = _mask(pc.not_equal(early, late))  # a local time the clocks skip
    local_ok = local & ~impossible & ~gap
    utc = pa.timestamp("us", tz="UTC")
    if with_offset is None:
        with_offset = Converted(pa.nulls(len(values), utc), np.ones(len(values), dtype=bool),
                                np.zeros(len(values), dtype=bool))
    offset_ok = ~with_offset.failed & _mask(pc.is_valid(with_offset.typed))
    typed = pc.if_else(pa.array(local_ok), pc.cast(early, utc), with_offset.typed)
    typed = pc.if_else(pa.array(local_ok | offset_ok), typed, pa.scalar(None, utc))
    failed = _mask(pc.is_valid(values)) & ~local_ok & ~offset_ok
    whys = ((local & impossible, "out of range"), (gap, "a local time that does not exist (clocks skip it)"))
    return Converted(typed, failed, (local & (impossible | gap)) | with_offset.impossible, whys + with_offset.why)


def cast_each(clean: pa.Array, target: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """A cast of text that matched its pattern; when one value is impossible all the same (2023-02-30, an int out
    of range), the values are cast one by one to find it (a rare batch: valid batches never come here)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(clean, target), np.zeros(len(clean), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values, bad = [], []
        for v in clean.to_pylist():
            try:
                values.append(pc.cast(pa.array([v], pa.string()), target)[0].as_py() if v is not None else None)
                bad.append(False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                values.append(None)
                bad.append(True)
        return pa.array(values, target), np.array(bad, dtype=bool)
