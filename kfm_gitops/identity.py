"""Identity: canonical JSON (RFC 8785), digests, spec_hash, dataset_version_id, run ids and EvidenceRefs.

    spec_hash          = "sha256:" + hex(sha256(JCS({"dataset": D, "pipeline": P})))
    dataset_version_id = <slice_key>.<spec8>.<content8>
    content8           = first 8 hex of sha256(JCS(sorted [{"partition", "processed", "raw": sorted RAW digests}]))
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kfm_gitops.errors import KfmError

DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
ZERO_DIGEST = "sha256:" + "0" * 64
SLUG_RE = re.compile(r"[a-z0-9_]+")
# [0-9], not \d: \d matches every Unicode digit, and ids are ASCII.
VERSION_ID_RE = re.compile(
    r"(?P<slice>[0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2})?)?)\.(?P<spec8>[0-9a-f]{8})\.(?P<content8>[0-9a-f]{8})")
RUN_ID_RE = re.compile(
    r"kfm://run/(?P<name>(?P<time>[0-9]{8}T[0-9]{6}Z)\.(?P<chunk>[0-9A-Za-z-]+)\.(?P<suffix>[0-9a-f]{8}))")
VERSION_PLACEHOLDER = "<to-be-computed>"


class IdentityError(KfmError):
    """A value is not a well-formed identity (digest, slug, version id, run id), or cannot have one."""

    code = "IDENTITY_INVALID"


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 (JCS) bytes of ``obj``; NaN, infinities and unsafe integers are refused."""
    import rfc8785

    try:
        out: bytes = rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError) as exc:
        raise IdentityError(f"cannot canonicalise: {exc}", code="NOT_CANONICALISABLE") from exc
    return out


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_of(obj: Any) -> str:
    """The digest of an object's canonical JSON."""
    return sha256_digest(canonical_json(obj))


def check_digest(value: str) -> str:
    """Return ``value`` if it is a well-formed, non-zero sha256 digest; raise otherwise."""
    if not isinstance(value, str) or not DIGEST_RE.fullmatch(value):
        raise IdentityError(f"{value!r} is not a digest (sha256: followed by 64 lowercase hex digits)",
                            code="DIGEST_INVALID")
    if value == ZERO_DIGEST:
        raise IdentityError("the all-zero digest is not a digest of anything", code="DIGEST_INVALID")
    return value


def is_digest(value: object) -> bool:
    return isinstance(value, str) and bool(DIGEST_RE.fullmatch(value)) and value != ZERO_DIGEST


def check_slug(value: str) -> str:
    if not isinstance(value, str) or not SLUG_RE.fullmatch(value):
        raise IdentityError(f"{value!r} is not a slug (lowercase letters, digits and underscores)",
                            code="SLUG_INVALID")
    return value


def spec_hash(dataset: Mapping[str, Any], pipeline: Mapping[str, Any]) -> str:
    return digest_of({"dataset": dataset, "pipeline": pipeline})


@dataclass(frozen=True, slots=True)
class PartitionContent:
    partition: str
    processed: str
    raw: tuple[str, ...]

    def as_jcs(self) -> dict[str, Any]:
        return {"partition": self.partition, "processed": self.processed, "raw": sorted(self.raw)}


def content_hash(partitions: Iterable[PartitionContent]) -> str:
    items = sorted(partitions, key=lambda p: p.partition)
    keys = [p.partition for p in items]
    if len(set(keys)) != len(keys):
        raise IdentityError("a partition appears twice in one version")
    for p in items:
        check_digest(p.processed)
        for r in p.raw:
            check_digest(r)
    return digest_of([p.as_jcs() for p in items])


def dataset_version_id(spec: str, partitions: Sequence[PartitionContent]) -> str:
    """The version id: the last partition's key, then the first 8 hex of spec_hash and of the content hash."""
    check_digest(spec)
    if not partitions:
        raise IdentityError("a version needs at least one partition")
    from kfm_gitops.periods import PeriodError, parse_key

    modes = set()
    for p in partitions:
        try:
            modes.add(parse_key(p.partition)[0])
        except PeriodError as exc:
            raise IdentityError(f"partition {p.partition!r}: {exc}") from exc
    if len(modes) != 1:
        raise IdentityError(f"a version's partitions are all of one mode, not {sorted(modes)}")
    slice_key = max(p.partition for p in partitions)
    return f"{slice_key}.{spec[7:15]}.{content_hash(partitions)[7:15]}"


@dataclass(frozen=True, slots=True)
class VersionId:
    slice_key: str
    spec8: str
    content8: str

    def __str__(self) -> str:
        return f"{self.slice_key}.{self.spec8}.{self.content8}"


def parse_version_id(value: str) -> VersionId:
    m = VERSION_ID_RE.fullmatch(value) if isinstance(value, str) else None
    if not m:
        raise IdentityError(
            f"{value!r} is not a dataset_version_id (<slice_key>.<spec8>.<content8>, e.g. 2023-03.1a2b3c4d.5e6f7a8b)",
            code="VERSION_ID_INVALID")
    from kfm_gitops.periods import PeriodError, parse_key

    try:
        parse_key(m["slice"])
    except PeriodError as exc:
        raise IdentityError(f"{value!r}: {exc}", code="VERSION_ID_INVALID") from exc
    return VersionId(m["slice"], m["spec8"], m["content8"])


def run_id(time_utc: str, chunk_key: str, suffix: str) -> str:
    rid = f"kfm://run/{time_utc}.{chunk_key}.{suffix}"
    if not RUN_ID_RE.fullmatch(rid):
        raise IdentityError(f"{rid!r} is not a run id", code="RUN_ID_INVALID")
    return rid


def parse_run_id(value: str) -> dict[str, str]:
    m = RUN_ID_RE.fullmatch(value) if isinstance(value, str) else None
    if not m:
        raise IdentityError(f"{value!r} is not a run id (kfm://run/<YYYYMMDDTHHMMSSZ>.<chunk key>.<8 hex>)",
                            code="RUN_ID_INVALID")
    from datetime import datetime

    from kfm_gitops.periods import PeriodError, parse_key

    try:
        datetime.strptime(m["time"], "%Y%m%dT%H%M%SZ")
        parse_key(m["chunk"])
    except (ValueError, PeriodError) as exc:
        raise IdentityError(f"{value!r} is not a run id: {exc}", code="RUN_ID_INVALID") from exc
    return {"folder": m["name"], "time": m["time"], "chunk": m["chunk"], "suffix": m["suffix"]}


def acquisition_id(chunk_key: str, object_digests: Iterable[str], source_params: Mapping[str, Any]) -> str:
    """<chunk key>.<first 12 hex of sha256(JCS({"objects": sorted digests, "params": source params}))>."""
    digests = sorted(check_digest(d) for d in object_digests)
    return f"{chunk_key}.{digest_of({'objects': digests, 'params': dict(source_params)})[7:19]}"
