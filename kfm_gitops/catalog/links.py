"""Links: every href, link and EvidenceRef of a version's catalogs resolves (a file in the repository, an object in
the store, a record in another catalog), and the three catalogs agree with the manifest on every digest.

The EvidenceRef resolver answers RESOLVED, UNRESOLVED (well-formed, but the target is not there or is not what the
reference names), DENIED (the target is restricted beyond the caller's clearance) or ERROR (malformed, ambiguous, or
the target could not be checked). It never guesses: no other store, no nearest version, no partial digest.

Who may see what: a version, its records and its PROCESSED artifacts carry the version's label (an artifact that
several versions publish, the least restrictive of theirs); RAW objects and terms snapshots are seen under the open
label only when every version made from them is open, else only by a caller with full access; a run's provenance
carries the most restrictive label of the versions that use it. A caller with ``clearance=None`` (the repository's
own checks) has full access; one with a label sees what is labelled at most as restrictively.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kfm_gitops.catalog._json import Problem, dict_at, dicts, list_at, pointer
from kfm_gitops.catalog._layout import (
    ARTIFACT_REF_RE,
    COLLECTION_FILE,
    DCAT_FILE,
    DCAT_REF_RE,
    ITEMS_DIR,
    LINK_SCHEMES,
    PROV_FILE,
    PROV_REF_RE,
    ROLLUP_RE,
    STAC_REF_RE,
    digest_of_multihash,
    item_file,
)
from kfm_gitops.config import Vocabularies
from kfm_gitops.identity import RUN_ID_RE, VERSION_ID_RE, sha256_digest
from kfm_gitops.store import Store

Status = Literal["RESOLVED", "UNRESOLVED", "DENIED", "ERROR"]
STATUSES: tuple[Status, ...] = ("RESOLVED", "UNRESOLVED", "DENIED", "ERROR")


@dataclass(frozen=True, slots=True)
class Resolution:
    ref: str
    status: Status
    target: str = ""  # what it resolved to: a repository path, a store object
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Link:
    """A link found in a catalog file (``file`` relative to the version folder) at a JSON pointer."""

    file: str
    pointer: str
    ref: str
    kind: Literal["href", "ref", "path"]
    digest: str | None = None  # the digest the link says its target has


@dataclass(slots=True)
class _VersionInfo:
    label: str
    opens_raw: bool  # open label: its RAW may be seen under the open label too
    processed: set[str] = field(default_factory=set)
    raw: set[str] = field(default_factory=set)
    runs: set[str] = field(default_factory=set)


class Resolver:
    """Resolves EvidenceRefs and repository links under ``root``; ``overlay`` holds parsed catalog documents by
    repository path (those of a version not yet written) and wins over the files."""

    def __init__(self, root: Path, store: Store | None, vocab: Vocabularies | None = None,
                 clearance: str | None = None, overlay: Mapping[str, Any] | None = None) -> None:
        self.root = root
        self.store = store
        self.vocab = vocab or Vocabularies()
        self.clearance = clearance
        self.overlay = dict(overlay or {})
        self._docs: dict[str, Any] = {}
        self._ids: dict[str, set[str]] = {}
        self._cache: dict[str, Resolution] = {}
        self._index: dict[tuple[str, str], _VersionInfo] | None = None

    # Who may see what.

    def _rank(self, label: str | None) -> float:
        rank = self.vocab.label_rank(label) if label is not None else None
        return float("inf") if rank is None else float(rank)

    def visible(self, label: str | None) -> bool:
        return self.clearance is None or self._rank(label) <= self._rank(self.clearance)

    def index(self) -> dict[tuple[str, str], _VersionInfo]:
        """Every version of the repository: its label and what it holds (read once)."""
        if self._index is not None:
            return self._index
        self._index = {}
        open_label = self.vocab.policy_labels[0] if self.vocab.policy_labels else ""
        for path in sorted(self.root.glob("releases/*/*/promotion-manifest.json")):
            slug, version = path.parent.parent.name, path.parent.name
            doc = self.document(path.relative_to(self.root).as_posix())
            if not isinstance(doc, dict) or not VERSION_ID_RE.fullmatch(version):
                continue
            label = str(dict_at(doc, "policy").get("policy_label"))
            info = _VersionInfo(label, label == open_label)
            for p in dicts(list_at(doc, "partitions")):
                info.processed.add(str(p.get("processed")))
                info.raw.update(str(r) for r in list_at(p, "raw"))
            runs = self.document(f"releases/{slug}/{version}/runs.json")
            for r in dicts(list_at(runs, "runs")):
                info.runs.add(str(r.get("run_id")))
                receipt = self.document(str(r.get("receipt")))
                info.raw.update(str(i.get("digest")) for i in dicts(list_at(receipt, "inputs"))
                                if i.get("role") == "terms")
            self._index[(slug, version)] = info
        return self._index

    def artifact_label(self, digest: str) -> str | None:
        """The least restrictive label publishing it; for RAW and terms, the open label only when every version
        made from it is open; None (full access only) for what no version names."""
        versions = self.index().values()
        published = [v.label for v in versions if digest in v.processed]
        if published:
            return min(published, key=self._rank)
        sources = [v for v in versions if digest in v.raw]
        if sources and all(v.opens_raw for v in sources):
            return sources[0].label
        return None

    def run_label(self, run_id: str) -> str | None:
        labels = [v.label for v in self.index().values() if run_id in v.runs]
        return max(labels, key=self._rank) if labels else None

    def version_label(self, slug: str, version: str) -> str | None:
        info = self.index().get((slug, version))
        return info.label if info is not None else None

    # Reading.

    def document(self, rel: str) -> Any:
        """A parsed JSON document of the repository (overlay first), or None when absent or unreadable."""
        if rel in self.overlay:
            return self.overlay[rel]
        if rel not in self._docs:
            path = self.root / rel
            try:
                self._docs[rel] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
            except (OSError, ValueError):
                self._docs[rel] = None
        return self._docs[rel]

    def node_ids(self, rel: str) -> set[str]:
        if rel not in self._ids:
            from kfm_gitops.catalog.dcat import node_pointers

            doc = self.document(rel)
            self._ids[rel] = set(node_pointers(doc)) if doc is not None else set()
        return self._ids[rel]

    # Resolving.

    def resolve(self, ref: str) -> Resolution:
        if ref not in self._cache:
            self._cache[ref] = self._resolve(ref)
        return self._cache[ref]

    def _resolve(self, ref: str) -> Resolution:
        if m := ARTIFACT_REF_RE.fullmatch(ref):
            return self._artifact(ref, m.group(1))
        if m := DCAT_REF_RE.fullmatch(ref):
            return self._record(ref, m["slug"], m["version"], m["fragment"])
        if m := STAC_REF_RE.fullmatch(ref):
            return self._item(ref, m["slug"], m["version"], m["item"])
        if m := PROV_REF_RE.fullmatch(ref):
            return self._run(ref, m["run"])
        if m := ROLLUP_RE.fullmatch(ref):
            return self._rollup(ref, m["slug"], m["version"])
        return Resolution(ref, "ERROR", detail="not an EvidenceRef (kfm://artifact/sha256:..., dcat://<slug>@<version>"
                          ", stac://<collection>/items/<item>, prov://<run id>)")

    def _artifact(self, ref: str, digest: str) -> Resolution:
        if not self.visible(self.artifact_label(digest)):
            return Resolution(ref, "DENIED", detail="restricted beyond the caller's clearance")
        if self.store is None:
            return Resolution(ref, "ERROR", detail="no object store to look in")
        from kfm_gitops.store import StoreError, key_of

        try:
            there = self.store.exists(digest)
        except (OSError, StoreError) as exc:
            return Resolution(ref, "ERROR", detail=f"the store {self.store.url} cannot be read: {exc}")
        if not there:
            return Resolution(ref, "UNRESOLVED", detail=f"not in the store {self.store.url}")
        return Resolution(ref, "RESOLVED", target=f"{self.store.url}/{key_of(digest)}")

    def _version(self, ref: str, slug: str, version: str) -> Resolution | None:
        """None when the version exists and the caller may see it; else the answer."""
        if not VERSION_ID_RE.fullmatch(version):
            return Resolution(ref, "ERROR", detail=f"{version!r} is not a dataset_version_id")
        if not (self.root / "releases" / slug / version / "promotion-manifest.json").is_file():
            return Resolution(ref, "UNRESOLVED", detail=f"no version {version} of {slug} in this repository")
        if not self.visible(self.version_label(slug, version)):
            return Resolution(ref, "DENIED", detail="restricted beyond the caller's clearance")
        return None

    def _record(self, ref: str, slug: str, version: str, fragment: str | None) -> Resolution:
        rel = f"releases/{slug}/{version}/{DCAT_FILE}"
        answer = self._version(ref, slug, version)
        if answer is not None:
            return answer
        if self.document(rel) is None:
            return Resolution(ref, "UNRESOLVED", detail=f"{rel} is missing or not JSON")
        if ref not in self.node_ids(rel):
            return Resolution(ref, "UNRESOLVED", detail=f"{rel} describes no node {ref}")
        return Resolution(ref, "RESOLVED", target=rel + (f"#{fragment}" if fragment else ""))

    def _item(self, ref: str, slug: str, version: str, item: str) -> Resolution:
        rel = f"releases/{slug}/{version}/{item_file(item)}"
        answer = self._version(ref, slug, version)
        if answer is not None:
            return answer
        doc = self.document(rel)
        if not isinstance(doc, dict) or doc.get("id") != item or doc.get("collection") != f"{slug}@{version}":
            return Resolution(ref, "UNRESOLVED", detail=f"{rel} is not item {item} of collection {slug}@{version}")
        return Resolution(ref, "RESOLVED", target=rel)

    def _rollup(self, ref: str, slug: str, version: str) -> Resolution:
        rel = f"releases/{slug}/{version}/{PROV_FILE}"
        answer = self._version(ref, slug, version)
        if answer is not None:
            return answer
        doc = self.document(rel)
        if f"kfm:rollup/{slug}/{version}" not in dict_at(doc, "activity"):
            return Resolution(ref, "UNRESOLVED", detail=f"{rel} declares no activity {ref}")
        return Resolution(ref, "RESOLVED", target=rel)

    def _run(self, ref: str, run_id: str) -> Resolution:
        m = RUN_ID_RE.fullmatch(run_id)
        if m is None:
            return Resolution(ref, "ERROR", detail=f"{run_id!r} is not a run id")
        found = sorted(self.root.glob(f"releases/*/runs/{m['name']}/receipt.json"))
        if len(found) > 1:
            return Resolution(ref, "ERROR", detail="more than one dataset has a run folder of this name")
        if not found:
            return Resolution(ref, "UNRESOLVED", detail=f"no run folder {m['name']} under releases/")
        rel = found[0].relative_to(self.root).as_posix()
        if not self.visible(self.run_label(run_id)):
            return Resolution(ref, "DENIED", detail="restricted beyond the caller's clearance")
        doc = self.document(rel)
        if not isinstance(doc, dict) or doc.get("run_id") != run_id:
            return Resolution(ref, "UNRESOLVED", detail=f"{rel} is not the receipt of {run_id}")
        return Resolution(ref, "RESOLVED", target=rel)

    def resolve_path(self, rel: str, digest: str | None) -> Resolution:
        """A file of the repository, with the digest a link names (if it names one)."""
        norm = posixpath.normpath(rel)
        if norm.startswith("../") or norm == ".." or posixpath.isabs(norm):
            return Resolution(rel, "ERROR", detail="leaves the repository")
        path = self.root / norm
        if norm in self.overlay and digest is None:
            return Resolution(rel, "RESOLVED", target=norm)
        if not path.is_file():
            return Resolution(rel, "UNRESOLVED", detail="no such file in the repository")
        if digest is not None:
            try:
                actual = sha256_digest(path.read_bytes())
            except OSError as exc:
                return Resolution(rel, "ERROR", detail=f"cannot read it: {exc.strerror or exc}")
            if actual != digest:
                return Resolution(rel, "UNRESOLVED", detail=f"its digest is {actual}, the link names {digest}")
        return Resolution(rel, "RESOLVED", target=norm)


# Collecting the links of the triplet.

def stac_links(file: str, doc: Mapping[str, Any]) -> Iterator[Link]:
    for i, link in enumerate(list_at(doc, "links")):
        if isinstance(link, dict) and "href" in link:
            checksum = digest_of_multihash(str(link.get("file:checksum", "")))
            yield Link(file, pointer("links", i, "href"), str(link["href"]), "href", checksum)
    for name, asset in dict_at(doc, "assets").items():
        if isinstance(asset, dict) and "href" in asset:
            yield Link(file, pointer("assets", name, "href"), str(asset["href"]), "href")


def dcat_links(doc: Any, at: str = "") -> Iterator[Link]:
    """Every reference ({"@id": ...} alone) to an IRI of kfm's schemes, at any depth."""
    if isinstance(doc, dict):
        if set(doc) == {"@id"} and str(doc["@id"]).startswith(LINK_SCHEMES):
            yield Link(DCAT_FILE, at + pointer("@id"), str(doc["@id"]), "ref")
        for key, value in doc.items():
            yield from dcat_links(value, at + pointer(key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from dcat_links(value, at + pointer(i))


# PROV attributes that hold repository paths, with the attribute holding the file's digest.
PATH_ATTRIBUTES = {"kfm:receipt": "kfm:receiptDigest", "kfm:manifest": "kfm:manifestDigest"}


def prov_links(doc: Mapping[str, Any]) -> Iterator[Link]:
    from kfm_gitops.catalog.prov import NAMESPACES, records

    for section in ("entity", "activity"):
        for at, ident, attrs in records(doc, section):
            prefix, _, local = ident.partition(":")
            iri = NAMESPACES.get(prefix, "") + local
            if prefix in NAMESPACES and not iri.startswith(("kfm://run/", "kfm://acquisition/", "kfm://agent/")):
                yield Link(PROV_FILE, at, iri, "ref")
            for key, digest_key in PATH_ATTRIBUTES.items():
                if isinstance(attrs.get(key), str):
                    digest = attrs.get(digest_key)
                    yield Link(PROV_FILE, at + pointer(key), attrs[key], "path",
                               digest if isinstance(digest, str) else None)
            if isinstance(attrs.get("kfm:provenance"), str):
                yield Link(PROV_FILE, at + pointer("kfm:provenance"), attrs["kfm:provenance"], "ref")


def collect(docs: Mapping[str, Any]) -> list[Link]:
    """The links of the catalog files (``docs``: path inside the version folder -> parsed JSON)."""
    out: list[Link] = []
    for file, doc in sorted(docs.items()):
        if not isinstance(doc, dict):
            continue
        if file == DCAT_FILE:
            out += dcat_links(doc)
        elif file == PROV_FILE:
            out += prov_links(doc)
        else:
            out += stac_links(file, doc)
    return out


def resolve_link(resolver: Resolver, folder: str, link: Link) -> Resolution:
    """A link's resolution: an href is relative to its file unless it is an EvidenceRef; a path is the
    repository's."""
    if link.kind == "path":
        return resolver.resolve_path(link.ref, link.digest)
    if link.kind == "ref" or link.ref.startswith(LINK_SCHEMES):
        return resolver.resolve(link.ref)
    if "://" in link.ref or link.ref.startswith("/"):
        return Resolution(link.ref, "ERROR", detail="neither relative nor an EvidenceRef: kfm fetches nothing")
    target = posixpath.join(folder, posixpath.dirname(link.file), link.ref)
    return resolver.resolve_path(target, link.digest)


def check_links(resolver: Resolver, folder: str, docs: Mapping[str, Any]) -> tuple[list[Problem], list[dict[str, Any]]]:
    """Resolve every link: problems for those that do not resolve, and the link report's entries."""
    problems, report = [], []
    for link in collect(docs):
        r = resolve_link(resolver, folder, link)
        report.append({"file": link.file, "pointer": link.pointer, "ref": link.ref, "status": r.status,
                       "target": r.target, "detail": r.detail})
        if r.status != "RESOLVED":
            problems.append(Problem(link.file, link.pointer, f"LINK_{r.status}", f"{link.ref}: {r.detail}"))
    return problems, report


# Agreement: the manifest, the STAC items, the DCAT distributions and the PROV entities name the same artifacts.

@dataclass(frozen=True, slots=True)
class _Named:
    digest: str | None
    size: int | None
    file: str
    pointer: str
    size_pointer: str = ""


def stac_artifacts(docs: Mapping[str, Any]) -> dict[str, _Named]:
    out = {}
    for file, doc in docs.items():
        if not file.startswith(f"{ITEMS_DIR}/") or not isinstance(doc, dict):
            continue
        asset = dict_at(doc, "assets", "data")
        m = ARTIFACT_REF_RE.fullmatch(str(asset.get("href", "")))
        size = asset.get("file:size")
        out[str(doc.get("id"))] = _Named(m.group(1) if m else None, size if isinstance(size, int) else None, file,
                                         pointer("assets", "data", "href"), pointer("assets", "data", "file:size"))
    return out


def dcat_artifacts(doc: Any) -> dict[str, _Named]:
    out = {}
    for i, node in enumerate(list_at(doc, "@graph")):
        if not isinstance(node, dict) or node.get("@type") != "dcat:Distribution":
            continue
        key = str(node.get("@id", "")).partition("#")[2]
        m = ARTIFACT_REF_RE.fullmatch(str(dict_at(node, "dcat:accessURL").get("@id", "")))
        checksum = str(dict_at(node, "spdx:checksum", "spdx:checksumValue").get("@value", ""))
        digest = m.group(1) if m and m.group(1) == f"sha256:{checksum}" else None
        size = str(dict_at(node, "dcat:byteSize").get("@value", ""))
        out[key] = _Named(digest, int(size) if size.isdigit() else None, DCAT_FILE,
                          pointer("@graph", i, "dcat:accessURL" if digest or not m else "spdx:checksum"),
                          pointer("@graph", i, "dcat:byteSize"))
    return out


def prov_artifacts(doc: Any) -> dict[str, _Named]:
    from kfm_gitops.catalog.prov import PROCESSED, records, types_of

    out = {}
    for at, ident, attrs in records(doc, "entity") if isinstance(doc, dict) else []:
        if PROCESSED in types_of(attrs):
            m = ARTIFACT_REF_RE.fullmatch("kfm://" + ident.removeprefix("kfm:"))
            out[str(attrs.get("kfm:partition"))] = _Named(m.group(1) if m else None, None, PROV_FILE, at)
    return out


def agreement(manifest: Mapping[str, Any], docs: Mapping[str, Any], store: Store | None) -> list[Problem]:
    """Each catalog names exactly the manifest's partitions, by the manifest's digests, with the store's sizes."""
    want = {str(p.get("partition")): str(p.get("processed")) for p in dicts(list_at(manifest, "partitions"))}
    named = {"STAC": stac_artifacts(docs), "DCAT": dcat_artifacts(docs.get(DCAT_FILE)),
             "PROV": prov_artifacts(docs.get(PROV_FILE))}
    present = {"STAC": COLLECTION_FILE in docs, "DCAT": DCAT_FILE in docs, "PROV": PROV_FILE in docs}
    named = {which: found for which, found in named.items() if present[which]}  # a missing file is its own finding
    roots = {"STAC": (COLLECTION_FILE, "/links"), "DCAT": (DCAT_FILE, "/@graph"), "PROV": (PROV_FILE, "/entity")}
    out = []
    for which, found in named.items():
        for key in sorted(set(want) - set(found)):
            out.append(Problem(*roots[which], "CATALOG_PARTITION_MISSING", f"{which} does not describe partition "
                               f"{key} of the version"))
        for key in sorted(set(found) - set(want)):
            out.append(Problem(found[key].file, found[key].pointer, "CATALOG_PARTITION_EXTRA",
                               f"{which} describes a partition {key} the version does not have"))
        for key in sorted(set(found) & set(want)):
            if found[key].digest != want[key]:
                out.append(Problem(found[key].file, found[key].pointer, "CATALOG_DIGEST_MISMATCH",
                                   f"partition {key}: {found[key].digest or 'no well-formed digest'} here, the "
                                   f"manifest has {want[key]}"))
    out += _sizes(want, named, store)
    return out


def _sizes(want: Mapping[str, str], named: Mapping[str, Mapping[str, _Named]], store: Store | None) -> list[Problem]:
    out = []
    for key, digest in sorted(want.items()):
        try:
            actual = store.size(digest) if store is not None and store.exists(digest) else None
        except OSError:
            actual = None  # the link check reports what the store cannot answer
        for which in ("STAC", "DCAT"):
            got = named.get(which, {}).get(key)
            if got is None or got.digest != digest:
                continue
            if got.size is None or (actual is not None and got.size != actual):
                out.append(Problem(got.file, got.size_pointer, "CATALOG_SIZE_MISMATCH", f"partition {key}: the "
                                   f"size {got.size} is not the store's {actual}"))
    return out


def carried_provenance(resolver: Resolver, doc: Any) -> list[Problem]:
    """A carried artifact's link names a run whose receipt says it made that artifact for that partition."""
    from kfm_gitops.catalog.prov import records

    out = []
    for at, ident, attrs in records(doc, "entity") if isinstance(doc, dict) else []:
        m = PROV_REF_RE.fullmatch(str(attrs.get("kfm:provenance", "")))
        if m is None:
            continue
        r = resolver.resolve(m.group(0))
        receipt = resolver.document(r.target) if r.status == "RESOLVED" else None
        want = (f"partition:{attrs.get('kfm:partition')}", "sha256:" + ident.rpartition("sha256:")[2])
        outputs = {(str(o.get("role")), str(o.get("digest"))) for o in dicts(list_at(receipt, "outputs"))}
        if receipt is not None and want not in outputs:
            out.append(Problem(PROV_FILE, at + pointer("kfm:provenance"), "CATALOG_PROVENANCE_MISMATCH",
                               f"the receipt of {m['run']} does not list {want[1]} as its {want[0]}"))
    return out
