"""The ``http`` connector: upstream payloads at URLs filled from the chunk window, streamed into the store.

    connector:
      type: http
      params:
        url: "https://example.org/reports/{year}/{month}.csv"  # http(s); placeholders as in connectors.expand
        name: "{year}-{month}/reports.csv"     # optional: the object's name; default the URL's last path segment
        media_type: text/csv                   # optional: what the payload must be; default from the name
        timeout: 30                            # seconds for the connection and for each read
        retries: 3                             # attempts after the first on 5xx, network errors, short bodies
        backoff: 0.5                           # seconds before the first retry, doubling after each
        max_bytes: 1073741824                  # optional cap per object

One URL per distinct filled value (a quarterly chunk with a ``{month}`` URL asks for three). A 404 or 410 means the
period has no data: a gap, not an error. Everything else that goes wrong upstream is a finding, never an exception.
"""

from __future__ import annotations

import http.client
import math
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from kfm_gitops import __version__
from kfm_gitops._urls import SCHEMES, redact, url_problem
from kfm_gitops.connectors import (
    HTML_TYPES,
    Context,
    FetchedObject,
    FetchResult,
    TemplateError,
    Window,
    expand,
    looks_like_html,
    media_type_of,
)
from kfm_gitops.errors import KfmError
from kfm_gitops.findings import Finding, Location
from kfm_gitops.store import StoreError

PARAMS = frozenset({"url", "name", "media_type", "timeout", "retries", "backoff", "max_bytes"})
GAP_STATUSES = frozenset({404, 410})  # the upstream has nothing for this period
READ = 1024 * 1024
_SNIFF = 16  # bytes of the body, after leading whitespace, kept to recognise an HTML page
_BOM = b"\xef\xbb\xbf"
_SEP = "\x00"  # joins the url and name templates so that one expand() pairs them day by day; URLs cannot hold it
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_HINTS = {
    "UPSTREAM_UNAVAILABLE": "the server is down, slow or unreachable: acquire again later, or raise params.retries "
                            "or params.timeout",
    "UPSTREAM_TRUNCATED": "the connection dropped before the whole body arrived: acquire again later",
}


@dataclass(frozen=True, slots=True)
class _Settings:
    timeout: float
    retries: int
    backoff: float
    max_bytes: int
    media_type: str | None


class _Retry(KfmError):
    """An attempt failed in a way another attempt may not: ``code`` is the finding when attempts run out."""

    code = "UPSTREAM_UNAVAILABLE"

    def __init__(self, code: str, detail: str, wait: float = 0.0) -> None:
        super().__init__(detail, code=code)
        self.detail = detail
        self.wait = wait  # what the server asked for (Retry-After), at least


RETRY_AFTER_CAP = 60.0  # seconds: a server asking for longer is treated as unavailable for this run


def _retry_after(value: str | None) -> float:
    """Retry-After in seconds (delta-seconds or an HTTP date), 0 when absent or unreadable."""
    if not value:
        return 0.0
    if value.strip().isdigit():
        return float(value.strip())
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    from datetime import UTC, datetime

    return max(0.0, (when - datetime.now(UTC)).total_seconds()) if when.tzinfo else 0.0


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _settings(params: Mapping[str, Any], default_max: int) -> tuple[_Settings | None, list[str]]:
    problems: list[str] = []
    unknown = sorted(str(k) for k in params if k not in PARAMS)
    if unknown:
        problems.append(f"unknown params {', '.join(unknown)} (known: {', '.join(sorted(PARAMS))})")
    timeout, retries = params.get("timeout", 30), params.get("retries", 3)
    backoff, max_bytes = params.get("backoff", 0.5), params.get("max_bytes", default_max)
    media_type = params.get("media_type")
    if not _number(timeout) or timeout <= 0:
        problems.append(f"timeout must be a positive number of seconds, not {timeout!r}")
    if not _count(retries) or retries < 0:
        problems.append(f"retries must be a whole number, 0 or more, not {retries!r}")
    if not _number(backoff) or backoff < 0:
        problems.append(f"backoff must be a number of seconds, 0 or more, not {backoff!r}")
    if not _count(max_bytes) or max_bytes <= 0:
        problems.append(f"max_bytes must be a positive whole number, not {max_bytes!r}")
    if media_type is not None and (not isinstance(media_type, str) or not _MEDIA_TYPE.fullmatch(media_type.lower())):
        problems.append(f"media_type must be a media type like text/csv, not {media_type!r}")
    if problems:
        return None, problems
    return _Settings(float(timeout), retries, float(backoff), max_bytes,
                     media_type.lower() if isinstance(media_type, str) else None), []




def _name_problem(name: str) -> str | None:
    if not name or name.startswith("/") or "\\" in name or re.search(r"[\x00-\x1f\x7f]", name):
        return f"the object name {name!r} is empty, absolute or has backslashes or control characters"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return f"the object name {name!r} has an empty, '.' or '..' segment"
    return None


def _targets(url_t: str, name_t: str | None, window: Window) -> tuple[list[tuple[str, str]], list[str]]:
    """(name, url) for every distinct URL of the window, sorted by name; or the problems with the templates."""
    if _SEP in url_t or (name_t is not None and _SEP in name_t):
        return [], ["the url and name templates may not hold NUL characters"]
    try:
        for template in (url_t, name_t):
            if template is not None:
                expand(template, window)  # each on its own, so that a stray brace is blamed on the right one
        if name_t is None:
            pairs = [(url, unquote(urlsplit(url).path.rsplit("/", 1)[-1])) for url in expand(url_t, window)]
        else:
            pairs = [(url, name) for url, name in (t.split(_SEP) for t in expand(url_t + _SEP + name_t, window))]
    except TemplateError as exc:
        return [], [str(exc)]
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        return [], [f"a template does not fill: {type(exc).__name__}: {exc} "
                    "(placeholders: {year} {month} {day} {quarter} {week} {isoyear} {key} {start} {end})"]
    problems: list[str] = []
    by_url: dict[str, str] = {}
    by_name: dict[str, str] = {}
    twice: set[str] = set()
    for url, name in pairs:
        problem = url_problem(url)
        if problem is None and name == "" and name_t is None:
            problem = f"the url {url!r} ends in '/': give params.name"
        if problem is None:
            problem = _name_problem(name)
        if problem is None and by_url.setdefault(url, name) != name:
            if url in twice:
                continue  # said once for this url
            twice.add(url)
            problem = f"the url {url} gets two names, {by_url[url]!r} and {name!r}: the name template varies " \
                      "where the url does not"
        if problem is None and by_name.setdefault(name, url) != url:
            problem = f"the urls {by_name[name]} and {url} both give the name {name!r}: names must be unique " \
                      "within an acquisition (set params.name)"
        if problem is not None and problem not in problems:
            problems.append(problem)
    if problems:
        return [], problems
    return sorted((name, url) for url, name in by_url.items()), []


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _media_type(headers: Message) -> str | None:
    value = headers.get("Content-Type")
    return value.split(";", 1)[0].strip().lower() if value else None


class _NoOtherSchemes(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s): urllib would also follow one to ftp://."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: http.client.HTTPMessage, newurl: str) -> urllib.request.Request | None:
        if urlsplit(newurl).scheme.lower() not in SCHEMES:
            raise urllib.error.HTTPError(newurl, code, f"{msg}: redirect to {newurl} refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Body:
    """The response body as the store's chunk iterator: raises _Retry when the transfer fails or ends short."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.response = response
        self.declared = response.length  # Content-Length, or None when chunked or absent
        self.received = 0
        self.head = b""  # the first bytes after a BOM and leading whitespace

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                block = self.response.read1(READ)  # what has arrived, so that a stall is counted to the byte
            except http.client.IncompleteRead as exc:
                raise _Retry("UPSTREAM_TRUNCATED", f"the chunked body ended early, after "
                                                   f"{self.received + len(exc.partial)} bytes") from None
            except (OSError, http.client.HTTPException) as exc:
                raise _Retry("UPSTREAM_UNAVAILABLE", f"{_describe(exc)} after {self.received} bytes") from None
            if not block:
                break
            self.received += len(block)
            if len(self.head) < _SNIFF:
                self.head = (self.head + block).removeprefix(_BOM).lstrip()[:_SNIFF]
            yield block
        if self.declared is not None and self.received < self.declared:
            raise _Retry("UPSTREAM_TRUNCATED", f"the body ended after {self.received} of {self.declared} bytes")

    def looks_html(self) -> bool:
        return looks_like_html(self.head)


def plan_fetch(params: Mapping[str, Any], window: Window, default_max: int
               ) -> tuple[_Settings | None, list[tuple[str, str]], list[str]]:
    """The settings and the (name, url) targets for a window, or the problems with the params: what `fetch` does
    before its first request, and what `kfm dataset validate` checks on a sample window."""
    url_t, name_t = params.get("url"), params.get("name")
    problems: list[str] = []
    if not isinstance(url_t, str) or not url_t:
        problems.append("the http connector needs params url")
    if name_t is not None and (not isinstance(name_t, str) or not name_t):
        problems.append(f"name must be a non-empty template, not {name_t!r}")
    targets: list[tuple[str, str]] = []
    if not problems and isinstance(url_t, str):
        targets, problems = _targets(url_t, name_t if isinstance(name_t, str) else None, window)
    settings, more = _settings(params, default_max)
    return settings, targets, problems + more


class HttpConnector:
    name = "http"

    def __init__(self, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._sleep = sleep  # tests pass their own to check the backoff without waiting for it

    def selects(self, params: Mapping[str, Any], window: Window, name: str) -> bool:
        """Whether the chunk of ``window`` asks for the object ``name``."""
        return any(n == name for n, _ in plan_fetch(params, window, 1)[1])

    def fetch(self, params: Mapping[str, Any], window: Window, ctx: Context) -> FetchResult:
        result = FetchResult()
        loc = Location(ctx.where) if ctx.where else None
        settings, targets, problems = plan_fetch(params, window, ctx.max_bytes)
        if problems or settings is None:
            for problem in problems:
                result.findings.append(Finding("CONNECTOR_PARAMS", problem, loc,
                                               hint='e.g. url: "https://example.org/data/{year}-{month}.csv"'))
            return result
        opener = urllib.request.build_opener(_NoOtherSchemes)
        for name, url in targets:
            outcome = self._fetch_one(opener, url, name, settings, ctx, loc)
            if isinstance(outcome, FetchedObject):
                result.objects.append(outcome)
            elif outcome is not None:
                result.findings.append(outcome)
        return result

    def _fetch_one(self, opener: urllib.request.OpenerDirector, url: str, name: str, settings: _Settings,
                   ctx: Context, loc: Location | None) -> FetchedObject | Finding | None:
        delay = settings.backoff
        last = _Retry("UPSTREAM_UNAVAILABLE", "no attempt made")
        tries = 0
        for attempt in range(settings.retries + 1):
            if attempt:
                self._sleep(max(delay, last.wait))
                delay *= 2
            tries += 1
            try:
                return self._attempt(opener, url, name, settings, ctx, loc)
            except _Retry as exc:
                last = exc
                if exc.wait > RETRY_AFTER_CAP:
                    break
        waited = f"; it asks to wait {last.wait:.0f} s" if last.wait > RETRY_AFTER_CAP else ""
        return Finding(last.code, f"{url}: {last.detail} ({tries} attempt{'s' if tries != 1 else ''}{waited})", loc,
                       hint=_HINTS.get(last.code))

    def _attempt(self, opener: urllib.request.OpenerDirector, url: str, name: str, settings: _Settings,
                 ctx: Context, loc: Location | None) -> FetchedObject | Finding | None:
        request = urllib.request.Request(url, headers={
            "User-Agent": f"kfm-gitops/{__version__}",
            "Accept-Encoding": "identity",  # the digest is of the payload itself, not of a compressed transfer
        })
        try:
            response = opener.open(request, timeout=settings.timeout)
        except urllib.error.HTTPError as exc:
            status, reason = exc.code, " ".join(str(exc.reason).split())  # urllib's redirect-loop reason is 3 lines
            wait = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            exc.close()
            if status in GAP_STATUSES:
                return None
            if status >= 500 or status == 429:  # 429: too many requests, come back later
                raise _Retry("UPSTREAM_UNAVAILABLE", f"HTTP {status} {reason}", wait) from None
            return Finding("UPSTREAM_REFUSED", f"{url}: HTTP {status} {reason}", loc,
                           hint="check the url template, and any access the server requires")
        except http.client.InvalidURL as exc:
            return Finding("CONNECTOR_PARAMS", f"{url}: {exc}", loc)
        except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
            raise _Retry("UPSTREAM_UNAVAILABLE", _describe(exc)) from None
        with response:
            if not isinstance(response, http.client.HTTPResponse):  # only http(s) URLs get here
                raise TypeError(f"unexpected response type {type(response).__name__} for {url}")
            return self._receive(response, url, name, settings, ctx, loc)

    @staticmethod
    def _receive(response: http.client.HTTPResponse, url: str, name: str, settings: _Settings, ctx: Context,
                 loc: Location | None) -> FetchedObject | Finding:
        media_type = settings.media_type or media_type_of(name)
        html_expected = media_type in HTML_TYPES
        served = _media_type(response.headers)
        if served in HTML_TYPES and not html_expected:
            return Finding("UPSTREAM_ERROR_PAGE", f"{url}: HTTP {response.status} served {served}, not {media_type}",
                           loc, hint="open the url in a browser to read the page; if HTML is the payload, set "
                           "params.media_type: text/html")
        body = _Body(response)
        if body.declared is not None and body.declared > settings.max_bytes:
            return Finding("FILE_TOO_LARGE", f"{url}: Content-Length {body.declared} is over the "
                           f"{settings.max_bytes}-byte cap", loc,
                           hint="raise params.max_bytes in pipeline.yaml if this size is expected")
        try:
            stored = ctx.store.put_stream(body, max_bytes=settings.max_bytes)
        except StoreError as exc:
            return Finding(exc.code, f"{url}: {exc.message}", loc, hint=exc.hint)
        if stored.size == 0:
            return Finding("SOURCE_EMPTY", f"{url}: HTTP {response.status} with an empty body", loc,
                           hint="an empty upstream file is a delivery error; a period without data should be a 404")
        if body.looks_html() and not html_expected:
            return Finding("UPSTREAM_ERROR_PAGE", f"{url}: HTTP {response.status} served an HTML page, not "
                           f"{media_type}", loc, hint="open the url in a browser to read the page")
        final = getattr(response, "url", None) or url  # urllib sets it to where the redirects ended
        return FetchedObject(name, url, stored.digest, stored.size, media_type,
                             etag=response.headers.get("ETag"), last_modified=response.headers.get("Last-Modified"),
                             served_from=redact(final) if final != url else None)
