"""Source templates: the placeholders a connector's url or glob pattern is filled with, for every local day of a
chunk's window. Shared by the dataset checks (a template that cannot fill is a located finding) and the
connectors (which fill them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from kfm_gitops.errors import KfmError
from kfm_gitops.periods import iso_utc, local_day


@dataclass(frozen=True, slots=True)
class Window:
    """The chunk being acquired: its key and half-open UTC interval, in the partitioning's timezone."""

    key: str
    start: datetime
    end: datetime
    zone: tzinfo

    def days(self) -> list[date]:
        first, last = local_day(self.start, self.zone), local_day(self.end - timedelta(microseconds=1), self.zone)
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


class TemplateError(KfmError):
    """A template names a placeholder that does not exist, or has a stray brace."""

    code = "TEMPLATE_INVALID"


PLACEHOLDERS = ("year", "month", "day", "quarter", "week", "isoyear", "key", "start", "end")


def check_template(template: str) -> None:
    """Raise TemplateError unless every field of ``template`` is a bare placeholder and every brace is paired.

    A grammar smaller than str.format's (no attributes, indexes, conversions or format specs), so that what a
    template means is plain from reading it, and a mistake is named in the contributor's terms.
    """
    import difflib

    def fail(problem: str) -> TemplateError:
        return TemplateError(f"template {template!r}: {problem}")

    stray = "write '{{' or '}}' for a literal brace"
    known = "placeholders: " + " ".join(f"{{{p}}}" for p in PLACEHOLDERS)
    i = 0
    while i < len(template):
        c = template[i]
        if c in "{}" and template[i + 1:i + 2] == c:
            i += 2
            continue
        if c == "}":
            raise fail(f"a '}}' is not opened; {stray}")
        if c == "{":
            j = template.find("}", i + 1)
            field = template[i + 1:j]
            if j < 0 or "{" in field:
                raise fail(f"a '{{' is not closed; {stray}")
            name = field.split("!", 1)[0].split(":", 1)[0]
            if name in PLACEHOLDERS and name != field:
                raise fail(f"'{{{field}}}' has a format spec or conversion; write the placeholder bare, as "
                           f"'{{{name}}}'")
            if name not in PLACEHOLDERS:
                close = difflib.get_close_matches(name.strip(), PLACEHOLDERS, n=1, cutoff=0.6)
                if not close:  # an attribute or index on a placeholder: {year.real}, {year[0]}
                    close = [p for p in PLACEHOLDERS if name.startswith((f"{p}.", f"{p}["))][:1]
                mean = f" (did you mean '{{{close[0]}}}'?)" if close else ""
                raise fail(f"'{{{field}}}' is not a placeholder{mean}; {known}")
            i = j + 1
            continue
        i += 1


def expand(template: str, window: Window) -> list[str]:
    """Fill a template's placeholders for every local day of the window; each distinct result once, in order.

    Placeholders: {year} {month} {day} {quarter} {week} (ISO week, two digits) {isoyear} {key} {start} {end}.
    """
    check_template(template)
    out: list[str] = []
    seen: set[str] = set()
    for day in window.days():
        iso = day.isocalendar()
        text = template.format(
            year=f"{day.year:04d}", month=f"{day.month:02d}", day=f"{day.day:02d}",
            quarter=str((day.month - 1) // 3 + 1), week=f"{iso.week:02d}", isoyear=f"{iso.year:04d}",
            key=window.key, start=iso_utc(window.start), end=iso_utc(window.end),
        )
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out
