"""Calendar periods (daily, weekly, monthly, quarterly, yearly) in an IANA timezone, and their keys.

Chunks and partitions are periods: half-open intervals [start, end) between local midnights of the period's
timezone, expressed in UTC. Keys are partition-style: ``2023``, ``2023-Q1``, ``2023-01``, ``2023-W05`` (ISO week),
``2023-01-15``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache
from typing import Literal

from kfm_gitops.errors import KfmError

Mode = Literal["daily", "weekly", "monthly", "quarterly", "yearly"]
MODES: tuple[Mode, ...] = ("daily", "weekly", "monthly", "quarterly", "yearly")

# How coarse each mode is, for "chunking at least as coarse as partitioning".
COARSENESS: dict[str, int] = {"daily": 1, "weekly": 2, "monthly": 3, "quarterly": 4, "yearly": 5}


class PeriodError(KfmError):
    """A timestamp, timezone, period key or period that kfm cannot use."""

    code = "PERIOD_INVALID"


# Names in a zoneinfo folder that are not zones of their own: the host's local zone, and POSIX defaults.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory", "leapseconds", "leap-seconds.list", "tzdata.zi",
                        "zone.tab", "zone1970.tab", "iso3166.tab", "zonenow.tab", "SECURITY"})


@cache
def get_zone(name: str) -> tzinfo:
    """An IANA zone by name, from the pinned tzdata package (the same rules on every machine)."""
    if name in ("UTC", "Etc/UTC"):
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name in _NOT_ZONES or not re.fullmatch(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*", name, re.ASCII):
        raise PeriodError(f"{name!r} is not an IANA timezone name", code="TIMEZONE_UNKNOWN")
    try:
        from importlib import resources

        data = resources.files("tzdata").joinpath("zoneinfo", *name.split("/"))
        if data.is_file():
            with data.open("rb") as fh:
                return ZoneInfo.from_file(fh, key=name)
    except ModuleNotFoundError:  # no tzdata package: the system's database
        pass
    except ValueError as exc:
        raise PeriodError(f"{name!r} is not an IANA timezone name", code="TIMEZONE_UNKNOWN") from exc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise PeriodError(f"{name!r} is not an IANA timezone name", code="TIMEZONE_UNKNOWN") from exc


def period_start(day: date, mode: Mode) -> date:
    """The first local day of the period that holds ``day``."""
    if mode == "daily":
        return day
    if mode == "weekly":
        return day - timedelta(days=day.weekday())
    if mode == "monthly":
        return day.replace(day=1)
    if mode == "quarterly":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    if mode == "yearly":
        return date(day.year, 1, 1)
    raise PeriodError(f"unknown period mode {mode!r}")


def next_start(start: date, mode: Mode) -> date:
    """The first local day of the period after the one starting at ``start``."""
    if mode == "daily":
        return start + timedelta(days=1)
    if mode == "weekly":
        return start + timedelta(days=7)
    if mode in ("monthly", "quarterly"):
        step = 1 if mode == "monthly" else 3
        m = start.month - 1 + step
        return date(start.year + m // 12, m % 12 + 1, 1)
    if mode == "yearly":
        return date(start.year + 1, 1, 1)
    raise PeriodError(f"unknown period mode {mode!r}")


def key_of(start: date, mode: Mode) -> str:
    if mode == "daily":
        return start.isoformat()
    if mode == "weekly":
        iso = start.isocalendar()
        return f"{iso.year:04d}-W{iso.week:02d}"
    if mode == "monthly":
        return f"{start.year:04d}-{start.month:02d}"
    if mode == "quarterly":
        return f"{start.year:04d}-Q{(start.month - 1) // 3 + 1}"
    if mode == "yearly":
        return f"{start.year:04d}"
    raise PeriodError(f"unknown period mode {mode!r}")


_KEY_PATTERNS: tuple[tuple[Mode, re.Pattern[str]], ...] = (
    ("daily", re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")),
    ("weekly", re.compile(r"([0-9]{4})-W([0-9]{2})")),
    ("monthly", re.compile(r"([0-9]{4})-([0-9]{2})")),
    ("quarterly", re.compile(r"([0-9]{4})-Q([1-4])")),
    ("yearly", re.compile(r"([0-9]{4})")),
)


def parse_key(key: str) -> tuple[Mode, date]:
    """A period key back to its mode and first local day; raises PeriodError if malformed."""
    for mode, pattern in _KEY_PATTERNS:
        m = pattern.fullmatch(key)
        if not m:
            continue
        try:
            if mode == "daily":
                return mode, date(int(m[1]), int(m[2]), int(m[3]))
            if mode == "weekly":
                return mode, date.fromisocalendar(int(m[1]), int(m[2]), 1)
            if mode == "monthly":
                return mode, date(int(m[1]), int(m[2]), 1)
            if mode == "quarterly":
                return mode, date(int(m[1]), 3 * (int(m[2]) - 1) + 1, 1)
            return mode, date(int(m[1]), 1, 1)
        except ValueError as exc:
            raise PeriodError(f"{key!r} is not a valid {mode} key: {exc}", code="PERIOD_KEY_INVALID") from exc
    raise PeriodError(f"{key!r} is not a period key (2023, 2023-Q1, 2023-01, 2023-W05 or 2023-01-15)",
                      code="PERIOD_KEY_INVALID")


def local_midnight_utc(day: date, zone: tzinfo) -> datetime:
    """The UTC instant at which ``day`` begins in ``zone``.

    Where midnight does not exist (a DST jump at 00:00), the day begins at the jump, which is what
    fold=0 on the wall time before the jump yields.
    """
    try:
        return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise PeriodError(f"the local day {day.isoformat()} is out of the supported range ({SUPPORTED})",
                          code="OUT_OF_RANGE") from exc


@dataclass(frozen=True, slots=True)
class Period:
    key: str
    mode: Mode
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "mode": self.mode, "start": iso_exact(self.start), "end": iso_exact(self.end)}


def iso_utc(t: datetime) -> str:
    """The instant in UTC to the whole second, as records and receipts write it."""
    # isoformat, not strftime: strftime's %Y does not pad years before 1000 on every platform.
    return t.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def iso_exact(t: datetime) -> str:
    """The instant in UTC with its fraction of a second, if it has one: what a message shows."""
    u = t.astimezone(UTC)
    fraction = f".{u.microsecond:06d}".rstrip("0") if u.microsecond else ""
    return iso_utc(u)[:-1] + fraction + "Z"


def local_day(t: datetime, zone: tzinfo) -> date:
    return t.astimezone(zone).date()


def is_boundary(t: datetime, mode: Mode, zone: tzinfo) -> bool:
    """True when ``t`` is the start of a ``mode`` period in ``zone``."""
    start = period_start(local_day(t, zone), mode)
    return local_midnight_utc(start, zone) == t.astimezone(UTC)


def periods(start: datetime, end: datetime, mode: Mode, zone: tzinfo, *, limit: int | None = None,
            clip: bool = True) -> list[Period]:
    """The periods of ``mode`` that overlap [start, end); clipped to the window when ``clip``.

    With ``limit``, stops after limit + 1 periods so that a caller can tell "too many" cheaply.
    """
    out: list[Period] = []
    day = period_start(local_day(start, zone), mode)
    start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
    while True:
        p_start = local_midnight_utc(day, zone)
        if p_start >= end_utc:
            break
        nxt = next_start(day, mode)
        p_end = local_midnight_utc(nxt, zone)
        # A local day that a zone skipped (Pacific/Apia, 2011-12-30) is empty: it is no period.
        if p_end > start_utc and p_end > p_start:
            s = max(p_start, start_utc) if clip else p_start
            e = min(p_end, end_utc) if clip else p_end
            if s < e:
                out.append(Period(key_of(day, mode), mode, s, e))
            if limit is not None and len(out) > limit:
                break
        day = nxt
    return out


def period_of_key(key: str, zone: tzinfo) -> Period:
    mode, day = parse_key(key)
    try:
        nxt = next_start(day, mode)
    except (OverflowError, ValueError) as exc:
        raise PeriodError(f"the period {key} is out of the supported range ({SUPPORTED})", code="OUT_OF_RANGE") from exc
    return Period(key, mode, local_midnight_utc(day, zone), local_midnight_utc(nxt, zone))


# The instants a plan may name. Every period holding one, in any timezone (offsets under a day) and any mode, begins
# and ends inside what a datetime can hold: a yearly period around 0002-01-01 begins no earlier than 0001-01-01 local,
# one around 9998-12-31 ends no later than 9999-01-01 local.
MIN_INSTANT = datetime(2, 1, 1, tzinfo=UTC)
MAX_INSTANT = datetime(9998, 12, 31, tzinfo=UTC)
SUPPORTED = f"{iso_utc(MIN_INSTANT)}..{iso_utc(MAX_INSTANT)}"

_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?([Zz]|[+-][0-9]{2}:[0-9]{2})?")


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp that must carry an explicit offset ('Z' or +hh:mm), exact to the microsecond and
    between MIN_INSTANT and MAX_INSTANT."""
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        raise NaiveTimestamp(f"{text!r} is a date with no time and no UTC offset")
    m = _TIMESTAMP.fullmatch(text)
    if not m:
        raise PeriodError(f"{text!r} is not an RFC 3339 timestamp (like 2023-01-01T00:00:00Z)",
                          code="TIMESTAMP_INVALID")
    fraction, offset = m[2], m[3]
    if fraction is not None and fraction[7:].strip("0"):
        # datetime holds microseconds and would silently drop the rest, moving the instant.
        raise PeriodError(f"{text!r} is more precise than a microsecond (at most 6 fractional digits)",
                          code="TIMESTAMP_INVALID")
    if offset is not None and offset not in "Zz" and (int(offset[1:3]) > 23 or int(offset[4:6]) > 59):
        raise PeriodError(f"{text!r}: offset {offset} is out of range (-23:59..+23:59)", code="TIMESTAMP_INVALID")
    try:
        t = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError as exc:
        raise PeriodError(f"{text!r} is not a valid timestamp: {exc}", code="TIMESTAMP_INVALID") from exc
    if t.tzinfo is None:
        raise NaiveTimestamp(f"{text!r} has no UTC offset")
    # Aware comparisons subtract the offsets as timedeltas: no datetime past year 9999 is ever built.
    if not MIN_INSTANT <= t <= MAX_INSTANT:
        raise PeriodError(f"{text!r} is out of the supported range ({SUPPORTED})", code="OUT_OF_RANGE")
    return t


class NaiveTimestamp(PeriodError):
    """A timestamp with no UTC offset: which instant it means is exactly what kfm will not guess."""

    code = "TIMESTAMP_NAIVE"
