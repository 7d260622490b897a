"""The http connector against a real HTTP server on loopback, serving real files: gaps, outages and retries,
timeouts, truncated bodies, HTML error pages, size caps, empty bodies and bad params."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from conftest import Runner, stored_digests
from kfm_gitops.connectors import Context, FetchedObject, FetchResult, Window, get, media_type_of
from kfm_gitops.connectors.http import HttpConnector
from kfm_gitops.example import FIRST_PLAN
from kfm_gitops.findings import Location
from kfm_gitops.periods import get_zone, period_of_key
from kfm_gitops.store import Store

MTIME = 1677628800  # 2023-03-01T00:00:00Z
LAST_MODIFIED = "Wed, 01 Mar 2023 00:00:00 GMT"
WHERE = "datasets/ks_storm_reports/pipeline.yaml"
LOC = Location(WHERE)
CSV = b"event_id,begin,magnitude\n1,2023-03-02T10:00:00Z,1.75\n2,2023-03-09T22:15:00Z,60\n"
ERROR_PAGE = b"<!DOCTYPE html>\n<html><body><h1>Service temporarily unavailable</h1></body></html>\n"


class Upstream(http.server.ThreadingHTTPServer):
    """Serves the files below ``files``; the first path segment picks a behaviour (see Handler)."""

    daemon_threads = False  # server_close() joins every handler thread: nothing outlives a test

    def __init__(self, files: Path) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.files = files
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.release = threading.Event()  # set at teardown: handlers that hold a connection open let go

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class Handler(http.server.BaseHTTPRequestHandler):
    server: Upstream

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no request log on stderr

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.hits[self.path] += 1
            hits = self.server.hits[self.path]
        kind, _, rest = unquote(self.path).lstrip("/").partition("/")
        if kind == "files":
            self.serve(rest)
        elif kind == "gone":
            self.send_error(410)
        elif kind == "flaky":  # /flaky/<n>/<file>: 503 for the first n requests, then the file
            n, _, name = rest.partition("/")
            if hits <= int(n):
                self.send_error(503)
            else:
                self.serve(name)
        elif kind == "down":
            self.send_error(503)
        elif kind == "busy":  # /busy/<seconds>/<file>: 429 with Retry-After for the first request, then the file
            seconds, _, name = rest.partition("/")
            if hits == 1:
                self.send_response(429)
                self.send_header("Retry-After", seconds)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.serve(name)
        elif kind == "forbidden":
            self.send_error(403)
        elif kind == "slow":  # no answer until the test is over
            self.server.release.wait(5)
        elif kind == "stall":  # half the body, then nothing
            data = (self.server.files / rest).read_bytes()
            self.head(200, len(data))
            self.wfile.write(data[:10])
            self.server.release.wait(5)
        elif kind == "short":  # promises more bytes than it sends, then hangs up
            data = (self.server.files / rest).read_bytes()
            self.head(200, len(data) + 100)
            self.wfile.write(data)
        elif kind == "cut":  # chunked, hangs up before the last chunk
            self.protocol_version = "HTTP/1.1"
            self.close_connection = True
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n")
        elif kind == "html":
            self.head(200, len(ERROR_PAGE), content_type="text/html; charset=utf-8")
            self.wfile.write(ERROR_PAGE)
        elif kind == "nolength":  # HTTP/1.0: the body ends when the connection closes
            data = (self.server.files / rest).read_bytes()
            self.head(200, None)
            self.wfile.write(data)
        elif kind == "redirect":
            self.send_response(302)
            self.send_header("Location", f"/files/{rest}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif kind == "ftp":
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/x.csv")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif kind == "hangup":
            pass  # close without a status line
        else:
            self.send_error(404)

    def head(self, status: int, length: int | None, *, content_type: str = "text/csv") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def serve(self, rest: str) -> None:
        path = self.server.files / rest
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", media_type_of(path.name))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()[:16]}"')
        self.send_header("Last-Modified", formatdate(path.stat().st_mtime, usegmt=True))
        self.end_headers()
        self.wfile.write(data)


@dataclass
class Env:
    server: Upstream
    files: Path
    store: Store
    ctx: Context
    sleeps: list[float] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.server.base

    def put(self, name: str, data: bytes) -> str:
        """An upstream file; returns its digest."""
        path = self.files / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (MTIME, MTIME))
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def fetch(self, params: Mapping[str, Any], key: str = "2023-03") -> FetchResult:
        return HttpConnector(sleep=self.sleeps.append).fetch(params, window(key), self.ctx)

    def stored(self) -> list[str]:
        return stored_digests(self.store)

    def leftovers(self) -> list[str]:
        tmp = self.store_root / "tmp"
        return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []

    @property
    def store_root(self) -> Path:
        return Path(self.store.url)


def window(key: str) -> Window:
    zone = get_zone("UTC")
    period = period_of_key(key, zone)
    return Window(period.key, period.start, period.end, zone)


def etag(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()[:16]}"'


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    files = tmp_path / "upstream"
    files.mkdir()
    server = Upstream(files)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    store = Store(str(tmp_path / "objects"))
    try:
        yield Env(server, files, store, Context(root=tmp_path, store=store, where=WHERE))
    finally:
        server.release.set()
        server.shutdown()
        thread.join()
        server.server_close()


def test_monthly_file_with_etag_and_last_modified(env: Env) -> None:
    digest = env.put("2023-03.csv", CSV)
    url = f"{env.base}/files/2023-03.csv"
    result = env.fetch({"url": f"{env.base}/files/{{year}}-{{month}}.csv"})
    assert result.findings == []
    assert result.objects == [FetchedObject("2023-03.csv", url, digest, len(CSV), "text/csv",
                                            etag=etag(CSV), last_modified=LAST_MODIFIED)]
    assert env.store.read_bytes(digest) == CSV
    assert env.stored() == [digest]
    assert env.leftovers() == []
    # When it was fetched goes in the receipt, not in the manifest: the same bytes are the same acquisition.
    assert "etag" not in result.objects[0].as_dict()
    assert result.objects[0].fetch_info() == {"etag": etag(CSV), "last_modified": LAST_MODIFIED}


def test_objects_sorted_by_name_and_missing_days_are_gaps(env: Env) -> None:
    # 2023-W09 runs from Monday 27 February to Sunday 5 March: the names sort 01, 05, 27 but the days do not.
    digests = {day: env.put(f"2023-{md}.csv", f"day,{md}\n".encode())
               for day, md in (("27", "02-27"), ("01", "03-01"), ("05", "03-05"))}
    result = env.fetch({"url": f"{env.base}/files/{{year}}-{{month}}-{{day}}.csv", "name": "{day}.csv",
                        "media_type": "text/csv"}, key="2023-W09")
    assert result.findings == []
    assert [o.name for o in result.objects] == ["01.csv", "05.csv", "27.csv"]
    assert [o.digest for o in result.objects] == [digests["01"], digests["05"], digests["27"]]
    assert [o.source_uri for o in result.objects] == [f"{env.base}/files/2023-03-01.csv",
                                                      f"{env.base}/files/2023-03-05.csv",
                                                      f"{env.base}/files/2023-02-27.csv"]
    assert [o.size for o in result.objects] == [10, 10, 10]
    # one request per day, and a 404 is not retried
    assert sorted(env.server.hits.values()) == [1] * 7
    assert env.sleeps == []


def test_quarter_with_a_missing_month_has_a_gap(env: Env) -> None:
    jan, mar = env.put("2023-01.csv", b"m\n01\n"), env.put("2023-03.csv", b"m\n03\n")
    result = env.fetch({"url": f"{env.base}/files/{{year}}-{{month}}.csv"}, key="2023-Q1")
    assert result.findings == []
    assert [(o.name, o.digest, o.size) for o in result.objects] == [("2023-01.csv", jan, 5), ("2023-03.csv", mar, 5)]
    assert env.server.hits == Counter({"/files/2023-01.csv": 1, "/files/2023-02.csv": 1, "/files/2023-03.csv": 1})


def test_410_gone_is_a_gap(env: Env) -> None:
    result = env.fetch({"url": f"{env.base}/gone/{{year}}-{{month}}.csv"})
    assert result == FetchResult()
    assert env.server.hits == Counter({"/gone/2023-03.csv": 1})


def test_outage_retried_with_doubling_backoff_then_served(env: Env) -> None:
    digest = env.put("2023-03.csv", CSV)
    result = env.fetch({"url": f"{env.base}/flaky/2/{{year}}-{{month}}.csv"})
    assert result.findings == []
    assert [(o.name, o.digest, o.etag) for o in result.objects] == [("2023-03.csv", digest, etag(CSV))]
    assert env.server.hits == Counter({"/flaky/2/2023-03.csv": 3})
    assert env.sleeps == [0.5, 1.0]


def test_outage_that_lasts_is_a_finding(env: Env) -> None:
    url = f"{env.base}/down/2023-03.csv"
    result = env.fetch({"url": f"{env.base}/down/{{year}}-{{month}}.csv", "retries": 2, "backoff": 0.25})
    assert result.objects == []
    assert [(f.code, f.message, f.location) for f in result.findings] == [
        ("UPSTREAM_UNAVAILABLE", f"{url}: HTTP 503 Service Unavailable (3 attempts)", LOC)]
    assert env.server.hits == Counter({"/down/2023-03.csv": 3})
    assert env.sleeps == [0.25, 0.5]


def test_too_many_requests_waits_as_long_as_the_server_asks(env: Env) -> None:
    digest = env.put("2023-03.csv", CSV)
    result = env.fetch({"url": f"{env.base}/busy/7/{{year}}-{{month}}.csv"})
    assert result.findings == []
    assert [o.digest for o in result.objects] == [digest]
    assert env.sleeps == [7.0]  # Retry-After, not the 0.5 s backoff


def test_a_server_that_asks_for_too_long_a_wait_is_unavailable_now(env: Env) -> None:
    env.put("2023-03.csv", CSV)
    url = f"{env.base}/busy/3600/2023-03.csv"
    result = env.fetch({"url": f"{env.base}/busy/3600/{{year}}-{{month}}.csv"})
    assert [(f.code, f.message) for f in result.findings] == [
        ("UPSTREAM_UNAVAILABLE", f"{url}: HTTP 429 Too Many Requests (1 attempt; it asks to wait 3600 s)")]
    assert env.sleeps == []


def test_registry_builds_the_connector_with_real_sleep(env: Env) -> None:
    digest = env.put("2023-03.csv", CSV)
    connector = get("http")
    assert isinstance(connector, HttpConnector)
    assert connector.name == "http"
    started = time.monotonic()
    result = connector.fetch({"url": f"{env.base}/flaky/1/{{year}}-{{month}}.csv", "backoff": 0.05},
                             window("2023-03"), env.ctx)
    assert time.monotonic() - started >= 0.05
    assert [o.digest for o in result.objects] == [digest]
    assert env.server.hits == Counter({"/flaky/1/2023-03.csv": 2})


def test_slow_response_times_out(env: Env) -> None:
    url = f"{env.base}/slow/2023-03.csv"
    started = time.monotonic()
    result = env.fetch({"url": f"{env.base}/slow/{{year}}-{{month}}.csv", "timeout": 0.2, "retries": 1})
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 3
    assert result.objects == []
    assert [(f.code, f.message) for f in result.findings] == [
        ("UPSTREAM_UNAVAILABLE", f"{url}: TimeoutError: timed out (2 attempts)")]
    assert env.server.hits == Counter({"/slow/2023-03.csv": 2})
    assert env.stored() == []


def test_stall_inside_the_body_times_out(env: Env) -> None:
    env.put("2023-03.csv", CSV)
    url = f"{env.base}/stall/2023-03.csv"
    result = env.fetch({"url": url, "timeout": 0.2, "retries": 0})
    assert [(f.code, f.message) for f in result.findings] == [
        ("UPSTREAM_UNAVAILABLE", f"{url}: TimeoutError: timed out after 10 bytes (1 attempt)")]
    assert result.objects == []
    assert env.stored() == []
    assert env.leftovers() == []


def test_body_shorter_than_content_length_is_truncated(env: Env) -> None:
    env.put("2023-03.csv", CSV)
    url = f"{env.base}/short/2023-03.csv"
    result = env.fetch({"url": url, "retries": 1})
    assert result.objects == []
    assert [(f.code, f.message) for f in result.findings] == [
        ("UPSTREAM_TRUNCATED", f"{url}: the body ended after {len(CSV)} of {len(CSV) + 100} bytes (2 attempts)")]
    assert env.server.hits == Counter({"/short/2023-03.csv": 2})
    assert env.sleeps == [0.5]
    assert env.stored() == []  # the store dropped the partial object
    assert env.leftovers() == []


def test_chunked_body_cut_short_is_truncated(env: Env) -> None:
    url = f"{env.base}/cut/2023-03.csv"
    result = env.fetch({"url": url, "retries": 0})
    assert result.objects == []
    assert [(f.code, f.message) for f in result.findings] == [
        ("UPSTREAM_TRUNCATED", f"{url}: the chunked body ended early, after 5 bytes (1 attempt)")]
    assert env.stored() == []
    assert env.leftovers() == []


def test_html_error_page_served_as_html(env: Env) -> None:
    url = f"{env.base}/html/2023-03.csv"
    result = env.fetch({"url": f"{env.base}/html/{{year}}-{{month}}.csv"})
    assert result.objects == []
    assert [(f.code, f.message) for f in result.findings] == [
        ("UPSTREAM_ERROR_PAGE", f"{url}: HTTP 200 served text/html, not text/csv")]
    assert env.server.hits == Counter({"/html/2023-03.csv": 1})  # not retried
    assert env.stored() == []  # not even downloaded


def test_html_is_accepted_when_html_is_the_payload(env: Env) -> None:
    digest = "sha256:" + hashlib.sha256(ERROR_PAGE).hexdigest()
    url = f"{env.base}/html/bulletin"
    result = env.fetch({"url": url, "media_type": "text/html"})
    assert result.findings == []
    assert result.objects == [FetchedObject("bulletin", url, digest, len(ERROR_PAGE), "text/html")]
    by_name = env.fetch({"url": f"{env.base}/html/bulletin.html"})
    assert by_name.findings == []
    assert [(o.name, o.media_type, o.digest) for o in by_name.objects] == [("bulletin.html", "text/html", digest)]


@pytest.mark.parametrize("body", [
    ERROR_PAGE,
    b"\r\n \t<HTML lang='en'><body>Maintenance</body></HTML>",
    b"\xef\xbb\xbf<!doctype HTML><title>502 Bad Gateway</title>",
    b"\n" * 5000 + b"<html>" + b"x" * 100,
])
def test_html_body_behind_a_data_content_type_is_an_error_page(env: Env, body: bytes) -> None:
    digest = env.put("2023-03.csv", body)
    url = f"{env.base}/files/2023-03.csv"
    result = env.fetch({"url": f"{env.base}/files/{{year}}-{{month}}.csv"})
    assert result.objects == []
    assert [(f.code, f.message) for f in result.findings] == [
        ("UPSTREAM_ERROR_PAGE", f"{url}: HTTP 200 served an HTML page, not text/csv")]
    assert env.stored() == [digest]  # content-addressed: the page may stay, nothing refers to it


def test_html_later_in_the_body_is_data(env: Env) -> None:
    body = b"id,comment\n1,<html> in a cell\n"
    digest = env.put("2023-03.csv", body)
    result = env.fetch({"url": f"{env.base}/files/{{year}}-{{month}}.csv"})
    assert result.findings == []
    assert [o.digest for o in result.objects] == [digest]


def test_content_length_over_the_cap_is_not_downloaded(env: Env) -> None:
    env.put("2023-03.csv", b"x" * 1000)
    url = f"{env.base}/files/2023-03.csv"
    result = env.fetch({"url": url, "max_bytes": 999})
    assert result.objects == []
    assert [(f.code, f.message) for f in result.findings] == [
        ("FILE_TOO_LARGE", f"{url}: Content-Length 1000 is over the 999-byte cap")]
    assert not env.store_root.exists()  # the store was never written to
    assert env.server.hits == Counter({"/files/2023-03.csv": 1})


def test_context_cap_applies_without_params(env: Env, tmp_path: Path) -> None:
    env.put("2023-03.csv", b"x" * 1000)
    url = f"{env.base}/files/2023-03.csv"
    ctx = Context(root=tmp_path, store=env.store, max_bytes=500)
    result = HttpConnector(sleep=env.sleeps.append).fetch({"url": url}, window("2023-03"), ctx)
    assert result.objects == []
    assert [(f.code, f.message, f.location) for f in result.findings] == [
        ("FILE_TOO_LARGE", f"{url}: Content-Length 1000 is over the 500-byte cap", None)]


def test_streamed_body_over_the_cap(env: Env) -> None:
    data = b"y" * 1000
    digest = env.put("2023-03.csv", data)
    url = f"{env.base}/nolength/2023-03.csv"
    over = env.fetch({"url": url, "max_bytes": 999})
    assert over.objects == []
    assert [(f.code, f.message) for f in over.findings] == [("FILE_TOO_LARGE", f"{url}: more than the 999-byte cap")]
    assert env.stored() == []
    assert env.leftovers() == []
    at_cap = env.fetch({"url": url, "max_bytes": 1000})
    assert at_cap.findings == []
    assert at_cap.objects == [FetchedObject("2023-03.csv", url, digest, 1000, "text/csv")]  # no ETag sent


def test_empty_body_is_a_finding(env: Env) -> None:
    env.put("2023-03.csv", b"")
    url = f"{env.base}/files/2023-03.csv"
    result = env.fetch({"url": f"{env.base}/files/{{year}}-{{month}}.csv"})
    assert result.objects == []
    assert [(f.code, f.message) for f in result.findings] == [("SOURCE_EMPTY", f"{url}: HTTP 200 with an empty body")]
    assert env.server.hits == Counter({"/files/2023-03.csv": 1})


def test_other_4xx_is_refused_without_retry(env: Env) -> None:
    url = f"{env.base}/forbidden/2023-03.csv"
    result = env.fetch({"url": url})
    assert [(f.code, f.message) for f in result.findings] == [("UPSTREAM_REFUSED", f"{url}: HTTP 403 Forbidden")]
    assert env.server.hits == Counter({"/forbidden/2023-03.csv": 1})
    assert env.sleeps == []


def test_redirect_followed_and_the_requested_url_recorded(env: Env) -> None:
    digest = env.put("2023-03.csv", CSV)
    url = f"{env.base}/redirect/2023-03.csv"
    result = env.fetch({"url": url})
    assert result.findings == []
    # the manifest names what the plan asked for; the receipt says where the redirect led
    assert result.objects == [FetchedObject("2023-03.csv", url, digest, len(CSV), "text/csv", etag=etag(CSV),
                                            last_modified=LAST_MODIFIED,
                                            served_from=f"{env.base}/files/2023-03.csv")]
    assert result.objects[0].fetch_info()["served_from"] == f"{env.base}/files/2023-03.csv"


def test_redirect_to_another_scheme_is_refused(env: Env) -> None:
    url = f"{env.base}/ftp/2023-03.csv"
    result = env.fetch({"url": url})
    assert result.objects == []
    assert [(f.code, f.message) for f in result.findings] == [
        ("UPSTREAM_REFUSED", f"{url}: HTTP 302 Found: redirect to ftp://127.0.0.1/x.csv refused")]


def test_hangup_without_a_response_is_retried(env: Env) -> None:
    url = f"{env.base}/hangup/2023-03.csv"
    result = env.fetch({"url": url, "retries": 1})
    assert [(f.code, f.message) for f in result.findings] == [
        ("UPSTREAM_UNAVAILABLE", f"{url}: RemoteDisconnected: Remote end closed connection without response "
                                 "(2 attempts)")]
    assert env.server.hits == Counter({"/hangup/2023-03.csv": 2})


def test_connection_refused_is_unavailable(env: Env) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/2023-03.csv"
    result = env.fetch({"url": url, "retries": 1})
    assert result.objects == []
    assert [f.code for f in result.findings] == ["UPSTREAM_UNAVAILABLE"]
    assert result.findings[0].message.startswith(f"{url}: ConnectionRefusedError: ")
    assert result.findings[0].message.endswith(" (2 attempts)")
    assert env.sleeps == [0.5]


def test_one_bad_url_does_not_stop_the_others(env: Env) -> None:
    jan = env.put("2023-01.csv", b"m\n01\n")
    env.put("2023-02.csv", b"")
    result = env.fetch({"url": f"{env.base}/files/{{year}}-{{month}}.csv"}, key="2023-Q1")
    assert [(o.name, o.digest) for o in result.objects] == [("2023-01.csv", jan)]
    assert [(f.code, f.message) for f in result.findings] == [
        ("SOURCE_EMPTY", f"{env.base}/files/2023-02.csv: HTTP 200 with an empty body")]


@pytest.mark.parametrize(("params", "messages"), [
    ({}, ["the http connector needs params url"]),
    ({"url": "ftp://127.0.0.1/{year}.csv"}, ["the url 'ftp://127.0.0.1/2023.csv' is not http:// or https://"]),
    ({"url": "file:///srv/{year}.csv"}, ["the url 'file:///srv/2023.csv' is not http:// or https://"]),
    ({"url": "/srv/{year}.csv"}, ["the url '/srv/2023.csv' is not http:// or https://"]),
    ({"url": "BASE/files/{year}-{month}/"}, ["the url 'BASE/files/2023-03/' ends in '/': give params.name"]),
    ({"url": "BASE/files/{nope}.csv"}, ["template 'BASE/files/{nope}.csv': '{nope}' is not a placeholder; "
                                        "placeholders: {year} {month} {day} {quarter} {week} {isoyear} {key} {start} "
                                        "{end}"]),
    ({"url": "BASE/files/{yeer}.csv"}, ["template 'BASE/files/{yeer}.csv': '{yeer}' is not a placeholder (did you "
                                        "mean '{year}'?); placeholders: {year} {month} {day} {quarter} {week} "
                                        "{isoyear} {key} {start} {end}"]),
    ({"url": "BASE/files/{year}.csv", "name": "{year.csv"},
     ["template '{year.csv': a '{' is not closed; write '{{' or '}}' for a literal brace"]),
    ({"url": "BASE/files/{year.csv"}, ["template 'BASE/files/{year.csv': a '{' is not closed; write '{{' or '}}' "
                                       "for a literal brace"]),
    ({"url": "http://user:secret@127.0.0.1/{year}.csv"},
     ["the url 'http://***@127.0.0.1/2023.csv' carries credentials, which would be recorded in the "
      "acquisition manifest; serve it without them, or behind an authenticating proxy"]),
    ({"url": "http://127.0.0.1/{year}.csv?user=a&pwd=b#access_token=c"},
     ["the url's query has pwd, access_token, which looks like a credential and would be recorded in the "
      "acquisition manifest; serve it without one, or behind an authenticating proxy"]),
    ({"url": "BASE/files/{year} {month}.csv"},
     ["the url 'BASE/files/2023 03.csv' has spaces, control or non-ASCII characters (percent-encode them; punycode "
      "hosts)"]),
    ({"url": "http://127.0.0.1:99999/{year}.csv"},
     ["the url 'http://127.0.0.1:99999/2023.csv' is malformed: Port out of range 0-65535"]),
    ({"url": "BASE/files/{year}.csv", "name": "../{year}.csv"},
     ["the object name '../2023.csv' has an empty, '.' or '..' segment"]),
    ({"url": "BASE/files/{year}.csv", "name": "/abs/{year}.csv"},
     ["the object name '/abs/2023.csv' is empty, absolute or has backslashes or control characters"]),
    ({"url": "BASE/files/{year}.csv", "name": 7}, ["name must be a non-empty template, not 7"]),
    ({"url": "BASE/files/{year}-{month}.csv", "name": "{day}.csv"},
     ["the url BASE/files/2023-03.csv gets two names, '01.csv' and '02.csv': the name template varies where the "
      "url does not"]),
    ({"url": "BASE/files/{year}-{month}.csv", "timeout": 0, "retries": -1, "backoff": "1", "max_bytes": 0,
      "media_type": "csv", "retry": 5},
     ["unknown params retry (known: backoff, max_bytes, media_type, name, retries, timeout, url)",
      "timeout must be a positive number of seconds, not 0",
      "retries must be a whole number, 0 or more, not -1",
      "backoff must be a number of seconds, 0 or more, not '1'",
      "max_bytes must be a positive whole number, not 0",
      "media_type must be a media type like text/csv, not 'csv'"]),
    ({"url": "BASE/files/{year}-{month}.csv", "retries": True, "max_bytes": 1.5, "timeout": float("inf")},
     ["timeout must be a positive number of seconds, not inf",
      "retries must be a whole number, 0 or more, not True",
      "max_bytes must be a positive whole number, not 1.5"]),
])
def test_bad_params_are_findings_and_nothing_is_fetched(env: Env, params: dict[str, Any],
                                                        messages: list[str]) -> None:
    params = {k: v.replace("BASE", env.base) if isinstance(v, str) else v for k, v in params.items()}
    result = env.fetch(params)
    assert result.objects == []
    assert [(f.code, f.location) for f in result.findings] == [("CONNECTOR_PARAMS", LOC)] * len(messages)
    assert [f.message for f in result.findings] == [m.replace("BASE", env.base) for m in messages]
    assert env.server.hits == Counter()


def test_two_urls_with_one_name_is_a_params_finding(env: Env) -> None:
    for month in ("01", "02", "03"):
        env.put(f"{month}/data.csv", CSV)
    result = env.fetch({"url": f"{env.base}/files/{{month}}/data.csv"}, key="2023-Q1")
    assert result.objects == []
    assert [(f.code, f.message) for f in result.findings] == [
        ("CONNECTOR_PARAMS", f"the urls {env.base}/files/01/data.csv and {env.base}/files/02/data.csv both give the "
                             "name 'data.csv': names must be unique within an acquisition (set params.name)"),
        ("CONNECTOR_PARAMS", f"the urls {env.base}/files/01/data.csv and {env.base}/files/03/data.csv both give the "
                             "name 'data.csv': names must be unique within an acquisition (set params.name)")]
    assert env.server.hits == Counter()  # refused before any request
    fixed = env.fetch({"url": f"{env.base}/files/{{month}}/data.csv", "name": "{year}-{month}/data.csv"},
                      key="2023-Q1")
    assert fixed.findings == []
    assert [o.name for o in fixed.objects] == ["2023-01/data.csv", "2023-02/data.csv", "2023-03/data.csv"]


def test_percent_encoded_last_segment_is_decoded_for_the_name(env: Env) -> None:
    digest = env.put("storm reports 2023-03.csv", CSV)
    url = f"{env.base}/files/storm%20reports%202023-03.csv"
    result = env.fetch({"url": f"{env.base}/files/storm%20reports%20{{year}}-{{month}}.csv"})
    assert result.findings == []
    assert [(o.name, o.source_uri, o.digest) for o in result.objects] == [("storm reports 2023-03.csv", url, digest)]


def test_credentials_in_the_query_are_refused(env: Env) -> None:
    result = env.fetch({"url": f"{env.base}/files/{{year}}-{{month}}.csv?api_key=abc123"})
    assert [f.code for f in result.findings] == ["CONNECTOR_PARAMS"]
    assert "api_key" in result.findings[0].message
    assert result.objects == []


def test_kfm_acquire_and_process_over_http(env: Env, governed: Path, kfm: Runner) -> None:
    """The example served over HTTP end to end: `kfm acquire` fetches each day's URL (404s are days without a
    batch), snapshots the terms from their URL, writes the manifest and the receipt; `kfm process` makes the
    partition from it."""
    import json
    import shutil

    from conftest import git

    upstream = governed / "upstream" / "ks_storm_reports"
    shutil.copytree(upstream / "2023-01", env.files / "2023-01")
    shutil.copy(upstream / "TERMS.txt", env.files / "TERMS.txt")
    pipeline = governed / "datasets" / "ks_storm_reports" / "pipeline.yaml"
    text = pipeline.read_text()
    start, end = text.index("connector:"), text.index("\nsource:")
    pipeline.write_text(text[:start] + "connector:\n  type: http\n  params:\n"
                        f'    url: "{env.base}/files/{{year}}-{{month}}/reports-{{year}}-{{month}}-{{day}}.csv"\n'
                        "    retries: 0\n" + text[end:])
    plan = governed / FIRST_PLAN
    plan.write_text(plan.read_text().replace('upstream_terms_snapshot: "upstream/ks_storm_reports/TERMS.txt"',
                                             f'upstream_terms_snapshot: "{env.base}/files/TERMS.txt"'))
    assert kfm("dataset", "validate", "ks_storm_reports").code == 0
    git(governed, "commit", "-qam", "upstream over http")
    r = kfm("acquire", FIRST_PLAN, "--chunk", "2023-01")
    assert r.code == 0, r.out + r.err
    (manifest_path,) = (governed / "data" / "raw" / "ks_storm_reports").glob("2023-01.*.json")
    manifest = json.loads(manifest_path.read_text())
    names = sorted(p.name for p in (upstream / "2023-01").iterdir())
    assert [o["name"] for o in manifest["objects"]] == names
    assert [o["source_uri"] for o in manifest["objects"]] == [f"{env.base}/files/2023-01/{n}" for n in names]
    assert manifest["terms"]["source_uri"] == f"{env.base}/files/TERMS.txt"
    assert manifest["terms"]["digest"] == "sha256:" + hashlib.sha256((upstream / "TERMS.txt").read_bytes()).hexdigest()
    (receipt,) = [json.loads(p.read_text()) for p in (governed / "releases").rglob("receipt.json")]
    fetched = [i for i in receipt["inputs"] if i.get("role") != "terms"]
    assert all(i["etag"].startswith('"') and "last_modified" in i for i in fetched)
    assert env.server.hits[f"/files/2023-01/{names[0]}"] == 1
    assert sum(env.server.hits.values()) == 31 + 1  # a request per day of January, and the terms
    r = kfm("process", FIRST_PLAN, "--chunk", "2023-01")
    assert r.code == 0, r.out + r.err
    assert r.out.startswith("chunk 2023-01: 120 rows, 120 accepted, 0 quarantined")
