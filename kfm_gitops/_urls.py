"""URLs that kfm records (acquisition sources, terms snapshots): which it must refuse (credentials would be written
into committed evidence), and how to show one without its secrets."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

SCHEMES = frozenset({"http", "https"})


def redact(url: str) -> str:
    """The url with its user information and the values of credential-like query or fragment parameters hidden."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unparseable url>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"***@{netloc}" if "@" in parts.netloc else netloc

    def hide(text: str) -> str:
        return "&".join(f"{k}=***" if _SECRET_PARAM.search(k) else (f"{k}={v}" if v or "=" in text else k)
                        for k, v in parse_qsl(text, keep_blank_values=True)) if "=" in text else text

    return parts._replace(netloc=netloc, query=hide(parts.query), fragment=hide(parts.fragment)).geturl()


def url_problem(url: str) -> str | None:
    """Why kfm cannot fetch (or must not record) a url; None when it can. Messages never repeat a credential."""
    if not url.isascii() or re.search(r"[\x00-\x20\x7f]", url):
        return (f"the url {redact(url)!r} has spaces, control or non-ASCII characters (percent-encode them; punycode "
                "hosts)")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        return f"the url {redact(url)!r} is malformed: {exc}"
    if parts.scheme.lower() not in SCHEMES:
        return f"the url {redact(url)!r} is not http:// or https://"
    if not parts.hostname:
        return f"the url {redact(url)!r} names no host"
    if parts.username is not None or parts.password is not None:
        return (f"the url {redact(url)!r} carries credentials, which would be recorded in the acquisition manifest; "
                "serve it without them, or behind an authenticating proxy")
    secret = [k for k, _ in parse_qsl(parts.query, keep_blank_values=True) + parse_qsl(parts.fragment,
              keep_blank_values=True) if _SECRET_PARAM.search(k)]
    if secret:
        return (f"the url's query has {', '.join(secret)}, which looks like a credential and would be recorded in "
                "the acquisition manifest; serve it without one, or behind an authenticating proxy")
    return None


_SECRET_PARAM = re.compile(r"(key|token|secret|pass|pwd|signature|sig$|auth|credential|session|bearer)", re.I)
