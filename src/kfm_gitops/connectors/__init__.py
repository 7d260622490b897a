"""Connectors fetch a chunk's upstream payloads into the store. Built in: ``file`` and ``http``; plugins register
a class under the entry-point group ``kfm_gitops.connectors``.

A connector gets its parameters (pipeline.yaml ``connector.params``), the chunk's window and a context (repository
root, store, size cap), and returns what it stored, or findings when something upstream is wrong. It never writes
anywhere but the store.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Protocol

from kfm_gitops.findings import Finding
from kfm_gitops.periods import iso_utc, local_day
from kfm_gitops.store import Store

DEFAULT_MAX_BYTES = 4 * 1024 * 1024 * 1024  # 4 GiB per object unless the pipeline says otherwise

MEDIA_TYPES = {
    ".csv": "text/csv",
    ".geojson": "application/geo+json",
    ".ndjson": "application/geo+json-seq",
    ".geojsonl": "application/geo+json-seq",
    ".parquet": "application/vnd.apache.parquet",
    ".json": "application/json",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".html": "text/html",
    ".pdf": "application/pdf",
}


HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def looks_like_html(head: bytes) -> bool:
    """Whether the first bytes of a payload (after a BOM and whitespace) open an HTML page: an error or login page
    delivered in place of data."""
    return head.removeprefix(b"\xef\xbb\xbf").lstrip()[:16].lower().startswith((b"<!doctype html", b"<html"))


def media_type_of(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in MEDIA_TYPES:
        return MEDIA_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


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


@dataclass(frozen=True, slots=True)
class FetchedObject:
    name: str  # the object's name within the acquisition, e.g. 2023-03/reports-2023-03-01.csv
    source_uri: str  # a repository-relative path or a URL
    digest: str
    size: int
    media_type: str
    etag: str | None = None
    last_modified: str | None = None
    served_from: str | None = None  # where a redirect led, when not source_uri

    def as_dict(self) -> dict[str, Any]:
        """The object as an acquisition manifest records it: what, not when (no ETag or Last-Modified)."""
        return {"name": self.name, "source_uri": self.source_uri, "digest": self.digest, "size": self.size,
                "media_type": self.media_type}

    def fetch_info(self) -> dict[str, str]:
        """How the upstream labelled it when fetched, for the receipt."""
        out = {}
        if self.etag is not None:
            out["etag"] = self.etag
        if self.last_modified is not None:
            out["last_modified"] = self.last_modified
        if self.served_from is not None:
            out["served_from"] = self.served_from
        return out


@dataclass(slots=True)
class FetchResult:
    objects: list[FetchedObject] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Context:
    root: Path  # the repository root: relative paths are below it
    store: Store
    max_bytes: int = DEFAULT_MAX_BYTES
    where: str = ""  # pipeline.yaml's display path, for findings


class Connector(Protocol):
    name: str

    def fetch(self, params: Mapping[str, Any], window: Window, ctx: Context) -> FetchResult: ...


# How a connector fetches (not what): left out of an acquisition's identity and manifest, so that tuning a timeout
# does not make the same bytes a new acquisition.
OPERATIONAL_PARAMS = frozenset({"timeout", "retries", "backoff", "max_bytes"})


def identity_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in OPERATIONAL_PARAMS}


class TemplateError(ValueError):
    """A template names a placeholder that does not exist, or has a stray brace."""


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


BUILTIN = {"file": ("kfm_gitops.connectors.file", "FileConnector"),
           "http": ("kfm_gitops.connectors.http", "HttpConnector")}


def get(name: str) -> Connector:
    """A connector by name: built in, else from the ``kfm_gitops.connectors`` entry points."""
    from kfm_gitops.errors import KfmError

    if name in BUILTIN:
        import importlib

        module, cls = BUILTIN[name]
        connector: Connector = getattr(importlib.import_module(module), cls)()
        return connector
    from importlib.metadata import entry_points

    for ep in entry_points(group="kfm_gitops.connectors"):
        if ep.name == name:
            plugin: Connector = ep.load()()
            return plugin
    raise KfmError(f"no connector named {name!r}", hint="built in: file, http; plugins register under the "
                   "entry-point group kfm_gitops.connectors")
