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
from pathlib import Path
from typing import Any, Protocol

from kfm_gitops.findings import Finding
from kfm_gitops.store import Store

# The template grammar lives in kfm_gitops.templates (the dataset checks need it too); connectors use it from here.
from kfm_gitops.templates import PLACEHOLDERS as PLACEHOLDERS
from kfm_gitops.templates import TemplateError as TemplateError
from kfm_gitops.templates import Window as Window
from kfm_gitops.templates import check_template as check_template
from kfm_gitops.templates import expand as expand

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


def readers(connector: str, params: Mapping[str, Any], windows: list[Window], name: str) -> list[bool] | None:
    """For each window, whether the connector fetches the object ``name`` for it, from its params alone (no
    upstream is asked); None when the connector cannot say (a plugin without ``selects``). A chunk leaves the rows
    of a shared file to the other chunks that read it."""
    selects = getattr(get(connector), "selects", None)
    if selects is None:
        return None
    try:
        return [bool(selects(params, w, name)) for w in windows]
    except TemplateError:
        return None


# How a connector fetches (not what): left out of an acquisition's identity and manifest, so that tuning a timeout
# does not make the same bytes a new acquisition.
OPERATIONAL_PARAMS = frozenset({"timeout", "retries", "backoff", "max_bytes"})


def identity_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in OPERATIONAL_PARAMS}


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


def check_params(doc: Any) -> list[Finding]:
    """What a connector can say of its params from pipeline.yaml alone (a _yaml.Document that passed its schema),
    before any chunk runs: `kfm dataset validate` adds these to the contract's own checks."""
    from datetime import UTC, datetime

    connector, params = doc.data["connector"]["type"], doc.data["connector"]["params"]
    if connector != "http" or not isinstance(params.get("url"), str):
        return []
    from kfm_gitops.connectors.http import plan_fetch

    sample = Window("2023-01", datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 1, 2, tzinfo=UTC), UTC)
    try:
        expand(params["url"], sample)
    except TemplateError:
        return []  # the contract's check says it, as PIPELINE_TEMPLATE
    return [Finding("PIPELINE_CONNECTOR", problem, doc.locate(("connector", "params"), key=True),
                    hint='e.g. url: "https://example.org/data/{year}-{month}.csv", timeout: 30')
            for problem in plan_fetch(params, sample, DEFAULT_MAX_BYTES)[2]]
