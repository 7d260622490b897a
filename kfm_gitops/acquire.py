"""RAW: acquire each chunk's upstream payloads into the store, snapshot the upstream terms, and write an
append-only acquisition manifest (``data/raw/<slug>/<acquisition_id>.json``) and a run receipt.

The manifest holds no time, so the same acquisition made in two plan PRs is the same file and merges cleanly.
Acquiring a window again reuses an identical acquisition; different bytes make a new acquisition that supersedes
the old one: a note when the old one was empty (a redelivery, the normal case), a HASH_MISMATCH warning when
upstream changed bytes it had delivered. An existing manifest is never rewritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kfm_gitops._fs import atomic_write, display_path, json_bytes
from kfm_gitops.config import Config
from kfm_gitops.connectors import Context, FetchedObject, Window, get, media_type_of
from kfm_gitops.dataset import Contract
from kfm_gitops.errors import FindingsError, KfmError
from kfm_gitops.evidence import Frozen, build_receipt, freeze, params_digest, plan_params, raw_dir, runs_of, write_run
from kfm_gitops.findings import Finding, Location
from kfm_gitops.identity import acquisition_id, sha256_digest
from kfm_gitops.periods import Period, get_zone, iso_utc
from kfm_gitops.plan import Plan
from kfm_gitops.receipts import new_run_id
from kfm_gitops.store import Store, StoreError

TERMS_MAX_BYTES = 16 * 1024 * 1024


@dataclass(slots=True)
class ChunkOutcome:
    key: str
    acquisition_id: str | None = None
    manifest: str | None = None
    reused: bool = False
    objects: int = 0
    bytes: int = 0
    run_folder: str | None = None
    receipt_digest: str | None = None
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the report says in plain words (a redelivery, ...)
    inputs: list[dict[str, str]] = field(default_factory=list)  # upstream sources and terms, for the receipt
    outputs: list[dict[str, str]] = field(default_factory=list)  # the manifest and the stored objects
    params_digest: str = ""

    @property
    def failed(self) -> bool:
        return any(f.severity == "error" for f in self.findings)


def snapshot_terms(source: str, config: Config, store: Store) -> tuple[dict[str, Any] | None, list[Finding]]:
    """Store the upstream licence/terms the plan names (a repository path or an http(s) URL)."""
    if source.startswith(("http://", "https://")):
        from kfm_gitops._urls import url_problem

        problem = url_problem(source)
        if problem is not None:
            return None, [Finding("TERMS_URL", f"upstream_terms_snapshot: {problem}", None)]
        return _fetch_terms_url(source, store)
    rel = PurePosixPath(source)
    if rel.is_absolute() or ".." in rel.parts:
        return None, [Finding("TERMS_OUTSIDE", f"terms snapshot {source!r} is outside the repository", None,
                              hint="name a file below the repository root, or an https URL")]
    path = config.root / source
    try:
        real = path.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        return None, [Finding("TERMS_MISSING", f"the terms snapshot {source} does not exist", None,
                              hint="commit the upstream's licence or terms, or name their URL")]
    if not real.is_relative_to(config.root.resolve()) or not real.is_file():
        return None, [Finding("TERMS_OUTSIDE", f"terms snapshot {source!r} is not a file inside the repository", None)]
    try:
        stored = store.put_file(real, max_bytes=TERMS_MAX_BYTES)
    except StoreError as exc:
        return None, [Finding(exc.code, f"terms snapshot {source}: {exc.message}", None)]
    if stored.size == 0:
        return None, [Finding("TERMS_MISSING", f"the terms snapshot {source} is empty", None)]
    return {"source_uri": source, "digest": stored.digest, "size": stored.size,
            "media_type": media_type_of(source)}, []


def _fetch_terms_url(url: str, store: Store) -> tuple[dict[str, Any] | None, list[Finding]]:
    import http.client
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            media = resp.headers.get_content_type()
            expected = resp.headers.get("Content-Length")
            stored = store.put_stream(iter(lambda: resp.read(65536), b""), max_bytes=TERMS_MAX_BYTES)
        if expected is not None and expected.isdigit() and int(expected) != stored.size:
            return None, [Finding("TERMS_MISSING", f"the terms at {url} arrived truncated", None)]
    except urllib.error.HTTPError as exc:
        exc.close()
        return None, [Finding("TERMS_MISSING", f"cannot fetch the terms at {url}: HTTP {exc.code}", None)]
    except (urllib.error.URLError, OSError, StoreError, http.client.HTTPException) as exc:
        return None, [Finding("TERMS_MISSING", f"cannot fetch the terms at {url}: {exc}", None)]
    if stored.size == 0:
        return None, [Finding("TERMS_MISSING", f"the terms at {url} are empty", None)]
    return {"source_uri": url, "digest": stored.digest, "size": stored.size, "media_type": media}, []


def manifest_identity(doc: dict[str, Any]) -> str:
    """The acquisition id: the chunk key, then 12 hex of the digest of the sorted object digests and everything else
    the manifest says (source parameters, terms, window, time axis, names), so that the id fixes the bytes. Only
    ``supersedes``, which depends on what was acquired before, is left out."""
    rest = {k: v for k, v in doc.items() if k not in ("acquisition_id", "supersedes", "objects")}
    rest["objects"] = [{k: v for k, v in o.items() if k != "digest"} for o in doc["objects"]]
    return acquisition_id(doc["chunk"]["key"], [o["digest"] for o in doc["objects"]], rest)


def read_manifests(root: Path, slug: str) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    folder = raw_dir(root, slug)
    if folder.is_dir():
        for p in sorted(folder.glob("*.json")):
            try:
                out.append((p, json.loads(p.read_text(encoding="utf-8"))))
            except (OSError, ValueError):
                continue  # `kfm raw verify` reports unreadable manifests
    return out


def changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What differs between two acquisitions of a chunk, in words: the objects changed, new and gone."""
    before = {o["name"]: o["digest"] for o in old.get("objects", [])}
    after = {o["name"]: o["digest"] for o in new.get("objects", [])}
    changed = sorted(n for n in before.keys() & after.keys() if before[n] != after[n])
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    parts = []
    for label, names in (("changed", changed), ("new", added), ("gone", removed)):
        if names:
            parts.append(f"{label}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")
    return "; ".join(parts) or "the terms or parameters changed"


def acquire_chunk(config: Config, plan: Plan, contract: Contract, chunk: Period, store: Store, frozen: Frozen,
                  terms: dict[str, Any]) -> ChunkOutcome:
    """Acquire one chunk and write its run folder with an acquisition receipt."""
    outcome = fetch_chunk(config, plan, contract, chunk, store, terms)
    receipt = build_receipt(frozen, new_run_id(chunk.key), "acquire", outcome.params_digest, inputs=outcome.inputs,
                            outputs=outcome.outputs, findings=outcome.findings, chunk=chunk)
    outcome.run_folder, outcome.receipt_digest = write_run(frozen, receipt)
    return outcome


def fetch_chunk(config: Config, plan: Plan, contract: Contract, chunk: Period, store: Store,
                terms: dict[str, Any]) -> ChunkOutcome:
    """Fetch one chunk into the store and write (or reuse) its acquisition manifest; no receipt."""
    outcome = ChunkOutcome(chunk.key)
    objects, source = _fetch(config, plan, contract, chunk, store, outcome.findings)
    manifest_rel = ""
    manifest_digest = ""
    if not outcome.failed:
        doc: dict[str, Any] = {
            "kfm_acquisition_version": "v1",
            "dataset_slug": contract.slug,
            "chunk": {"key": chunk.key, "start": iso_utc(chunk.start), "end": iso_utc(chunk.end),
                      "timezone": plan.timezone},
            "time_axis": plan.time_axis,
            "source": source,
            "terms": terms,
            "objects": [o.as_dict() for o in objects],
        }
        doc["acquisition_id"] = manifest_identity(doc)
        path, data = _record_acquisition(config, doc, outcome)
        manifest_rel = path.relative_to(config.root).as_posix()
        manifest_digest = sha256_digest(data)
        outcome.acquisition_id = doc["acquisition_id"]
        outcome.manifest = manifest_rel
        outcome.objects = len(objects)
        outcome.bytes = sum(o.size for o in objects)
        if not objects:
            outcome.findings.append(Finding("EMPTY_CHUNK", f"no upstream data for chunk {chunk.key}: a gap",
                                            Location(manifest_rel), severity="warning",
                                            hint="an empty chunk makes no partition; the report lists the gap"))
    outcome.params_digest = params_digest("acquire", plan=plan_params(plan), chunk=chunk.key, connector=source)
    outcome.inputs = [{"uri": terms["source_uri"], "digest": terms["digest"], "role": "terms"}] + [
        {"uri": o.source_uri, "digest": o.digest, **o.fetch_info()} for o in objects]
    # A failed run acquired nothing, whatever bytes it left in the (content-addressed) store.
    outcome.outputs = [{"uri": manifest_rel, "digest": manifest_digest, "role": "acquisition"}] + [
        {"uri": f"kfm://artifact/{o.digest}", "digest": o.digest} for o in objects] if manifest_rel else []
    return outcome


def _fetch(config: Config, plan: Plan, contract: Contract, chunk: Period, store: Store, findings: list[Finding]
           ) -> tuple[list[FetchedObject], dict[str, Any]]:
    """The chunk's upstream objects, fetched into the store by the pipeline's connector (sorted by name), and the
    source as the manifest records it."""
    from kfm_gitops.connectors import identity_params

    pipeline = contract.pipeline.data
    connector_name = pipeline["connector"]["type"]
    params = dict(pipeline["connector"]["params"])
    where = display_path(contract.folder / "pipeline.yaml")
    result = get(connector_name).fetch(params, Window(chunk.key, chunk.start, chunk.end, get_zone(plan.timezone)),
                                       Context(config.root, store, where=where))
    findings.extend(result.findings)
    objects = sorted(result.objects, key=lambda o: o.name)
    names = [o.name for o in objects]
    if len(set(names)) != len(names):
        findings.append(Finding("CONNECTOR_PARAMS", "two upstream objects have the same name", None))
    return objects, {"connector": connector_name, "params": identity_params(params),
                     "format": pipeline["source"]["format"]}


def _record_acquisition(config: Config, doc: dict[str, Any], outcome: ChunkOutcome) -> tuple[Path, bytes]:
    """Write an acquisition manifest, append-only: a new acquisition supersedes the chunk's current ones (upstream
    changed), an identical one is reused, one with other content under the same id is refused. Returns the file
    and its bytes."""
    acq, slug, key = doc["acquisition_id"], doc["dataset_slug"], doc["chunk"]["key"]
    path = raw_dir(config.root, slug) / f"{acq}.json"
    heads = _heads([(p, m) for p, m in read_manifests(config.root, slug)
                    if m.get("chunk", {}).get("key") == key and m.get("acquisition_id") != acq])
    if heads and not path.exists():
        doc["supersedes"] = sorted(str(m["acquisition_id"]) for _, m in heads)
        for p, m in heads:
            if not m.get("objects"):  # a redelivery of what was missing: the normal case, said in plain words
                outcome.notes.append(f"upstream delivered chunk {key}, which was empty in acquisition "
                                     f"{m['acquisition_id']} ({changes(m, doc)}): {acq} supersedes it, and both "
                                     "stay in RAW")
                continue
            outcome.findings.append(Finding(
                "HASH_MISMATCH",
                f"upstream changed since acquisition {m['acquisition_id']} ({changes(m, doc)}); "
                f"{acq} supersedes it", Location(display_path(p)), severity="warning",
                hint="the backfill report lists this; the old acquisition stays as evidence"))
    if not path.exists():
        data = json_bytes(doc)
        try:
            atomic_write(path, data, exclusive=True)
            return path, data
        except FileExistsError:  # a concurrent run wrote the same acquisition: same id, same bytes
            outcome.reused = True
            return path, path.read_bytes()
    data = path.read_bytes()
    try:
        on_disk = json.loads(data)
    except ValueError:
        on_disk = None
    # Same id, same content; only `supersedes` may differ (it depends on what was there before).
    if not isinstance(on_disk, dict) or {k: v for k, v in on_disk.items() if k != "supersedes"} != {
            k: v for k, v in doc.items() if k != "supersedes"}:
        outcome.findings.append(Finding("ACQUISITION_CONFLICT", f"{display_path(path)} exists with other content",
                                        Location(display_path(path)),
                                        hint="acquisition manifests are never rewritten; restore it from git"))
    else:
        outcome.reused = True
    return path, data


def _heads(found: list[tuple[Path, dict[str, Any]]]) -> list[tuple[Path, dict[str, Any]]]:
    """The acquisitions among ``found`` that none of them supersedes."""
    superseded = {s for _, m in found for s in m.get("supersedes", [])}
    return [(p, m) for p, m in found if m.get("acquisition_id") not in superseded]


def superseded_by(root: Path, slug: str) -> dict[str, dict[str, Any]]:
    """Each acquisition of a dataset that another supersedes, mapped to the acquisition that replaces it now (the
    end of the chain of supersessions)."""
    replaced = {str(old): m for _, m in read_manifests(root, slug) if isinstance(m.get("supersedes"), list)
                for old in m["supersedes"]}
    out: dict[str, dict[str, Any]] = {}
    for old, head in replaced.items():
        seen = {old}
        while str(head.get("acquisition_id")) in replaced and str(head.get("acquisition_id")) not in seen:
            seen.add(str(head.get("acquisition_id")))
            head = replaced[str(head.get("acquisition_id"))]
        out[old] = head
    return out


def plan_terms(config: Config, plan: Plan, store: Store) -> dict[str, Any]:
    """The plan's terms snapshot, stored; nothing is acquired without one."""
    terms, problems = snapshot_terms(plan.doc.data["governance"]["upstream_terms_snapshot"], config, store)
    if terms is None:
        loc = plan.doc.locate(("governance", "upstream_terms_snapshot"))
        raise FindingsError([Finding(f.code, f.message, loc, hint=f.hint) for f in problems],
                            "no licence or terms snapshot: nothing is acquired without one")
    return terms


def acquire(config: Config, plan: Plan, store: Store, keys: list[str] | None = None) -> list[ChunkOutcome]:
    """Acquire the plan's chunks (all, or those named); one outcome per chunk."""
    from kfm_gitops._fs import RepoLock
    from kfm_gitops.dataset import require_contract
    from kfm_gitops.plan import select_chunks

    contract = require_contract(config.root, plan.slug, config.vocab)
    chunks = select_chunks(plan, keys)
    with RepoLock(config.root):
        frozen = freeze(config, plan)
        terms = plan_terms(config, plan, store)
        return [acquire_chunk(config, plan, contract, c, store, frozen, terms) for c in chunks]


def _check_uri(uri: str) -> bool:
    """A source URI a manifest may name: a URL, or a clean path inside the repository."""
    if uri.startswith(("http://", "https://", "file://")):
        return True
    p = PurePosixPath(uri)
    return not p.is_absolute() and ".." not in p.parts and "\\" not in uri


def check_manifest(path: Path, doc: Any, slug: str) -> list[Finding]:
    """A manifest's own consistency: schema, name, slug, a recomputable id, paths inside the repository."""
    from kfm_gitops.schema import validate_data

    shown = display_path(path)
    loc = Location(shown)
    problems = validate_data(doc, "acquisition")
    if problems:
        return [Finding("MANIFEST_INVALID", p, loc) for p in problems]
    out: list[Finding] = []
    if path.name != f"{doc['acquisition_id']}.json":
        out.append(Finding("MANIFEST_TAMPERED", f"file name differs from acquisition_id {doc['acquisition_id']}", loc))
    if doc["dataset_slug"] != slug:
        out.append(Finding("MANIFEST_TAMPERED", f"dataset_slug {doc['dataset_slug']!r} in the folder of {slug!r}", loc))
    expected = manifest_identity(doc)
    if expected != doc["acquisition_id"]:
        out.append(Finding("MANIFEST_TAMPERED", f"its content gives id {expected}, not "
                           f"{doc['acquisition_id']}", loc, hint="acquisition manifests are never edited; "
                           "restore it from git"))
    for o in [doc["terms"], *doc["objects"]]:
        if not _check_uri(o["source_uri"]):
            out.append(Finding("MANIFEST_PATH_OUTSIDE", f"{o['source_uri']!r} names a path outside the repository",
                               loc))
    return out


def manifest_digests(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, digest) of every object a manifest names, its terms included."""
    return [("terms", doc["terms"]["digest"])] + [(o["name"], o["digest"]) for o in doc["objects"]]


def verify_raw(config: Config, store: Store, slugs: list[str], jobs: int | None = None
               ) -> tuple[list[str], list[Finding], int, int]:
    """Re-hash every object the acquisition manifests name, on all cores. Missing objects are one finding with
    their count and what to run; a corrupt one is a finding each. Returns (manifests checked, findings, objects
    named, objects missing)."""
    from kfm_gitops.store import missing_finding

    checked: list[str] = []
    findings: list[Finding] = []
    work: list[tuple[str, str, str]] = []  # (manifest shown, object name, digest)
    sizes: dict[str, int | None] = {}
    for slug in slugs:
        folder = raw_dir(config.root, slug)
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            checked.append(display_path(path))
            doc = _checked_manifest(path, slug, findings)
            if doc is not None:
                work.extend((checked[-1], name, digest) for name, digest in manifest_digests(doc))
                sizes.update({o["digest"]: o["size"] for o in [doc["terms"], *doc["objects"]]})
    verdicts = store.verify_all(sizes, jobs)
    missing = [w for w in work if verdicts[w[2]] == "OBJECT_MISSING"]
    if missing:
        findings.append(missing_finding(store, config.shared_store, missing, "acquisition manifest"))
    for shown, name, digest in work:
        code = verdicts[digest]
        if code not in (None, "OBJECT_MISSING"):
            findings.append(Finding(code, f"{name} ({digest}) is corrupt in the store {store.url}", Location(shown),
                                    hint="restore it from another store (`kfm store pull`) or acquire it again"))
    return checked, findings, len(sizes), len({d for _, _, d in missing})


def _checked_manifest(path: Path, slug: str, findings: list[Finding]) -> dict[str, Any] | None:
    """A manifest whose objects can be verified, or None (and the findings of why not)."""
    shown = display_path(path)
    if path.is_symlink():
        findings.append(Finding("MANIFEST_INVALID", "is a symbolic link; manifests are plain files",
                                Location(shown), hint="restore the manifest from git"))
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        findings.append(Finding("MANIFEST_INVALID", f"not JSON: {exc.msg}",
                                Location(shown, exc.lineno, exc.colno), hint="restore the manifest from git"))
        return None
    except (OSError, ValueError) as exc:
        findings.append(Finding("MANIFEST_INVALID", f"unreadable: {exc}", Location(shown),
                                hint="restore the manifest from git"))
        return None
    problems = check_manifest(path, doc, slug)
    findings.extend(problems)
    return None if any(f.code == "MANIFEST_INVALID" for f in problems) else dict(doc)


def dataset_digests(config: Config, slug: str) -> list[str]:
    """Every object a dataset's acquisitions and runs name, for `kfm store push|pull`."""
    digests: set[str] = set()
    for _, doc in read_manifests(config.root, slug):
        try:
            digests.update(d for _, d in manifest_digests(doc))
        except (KeyError, TypeError):
            continue
    for _, receipt in runs_of(config, slug):
        for out in receipt.get("outputs", []):
            if str(out.get("uri", "")).startswith("kfm://artifact/"):
                digests.add(str(out["digest"]))
    return sorted(digests)


def version_digests(folder: Path) -> set[str]:
    """Every object a version needs: its partitions, the RAW objects they were made from, and the terms snapshots
    of the acquisitions that hold those (so that `kfm raw verify` passes on a store that received the version)."""
    from kfm_gitops.versions import read_version, repository_of

    version = read_version(folder)
    if isinstance(version, list):
        raise FindingsError(version, f"{display_path(folder)} is not a readable version folder")
    raw = {r for p in version.partitions for r in p.raw}
    out = version.digests
    for _, manifest in read_manifests(repository_of(folder), version.slug):
        try:
            if raw & {o["digest"] for o in manifest["objects"]}:
                out.add(manifest["terms"]["digest"])
        except (KeyError, TypeError):
            continue  # `kfm raw verify` reports malformed manifests
    return out


def current_acquisition(root: Path, slug: str, key: str) -> tuple[Path, dict[str, Any]]:
    """The acquisition of a chunk that nothing supersedes; refuses when there is none, or more than one."""
    heads = _heads([(p, m) for p, m in read_manifests(root, slug) if m.get("chunk", {}).get("key") == key])
    if not heads:
        raise KfmError(f"chunk {key} of {slug} has no acquisition", hint="run `kfm acquire PLAN --chunk "
                       f"{key}` first")
    if len(heads) > 1:
        raise KfmError(f"chunk {key} of {slug} has {len(heads)} current acquisitions: "
                       f"{', '.join(sorted(str(m['acquisition_id']) for _, m in heads))}",
                       hint="acquire the chunk again: the new acquisition supersedes them all")
    return heads[0]


def objects_of(config: Config, targets: list[str]) -> set[str]:
    """The objects `kfm store push|pull` moves for its arguments: a dataset slug (its acquisitions and runs) or a
    version folder (what the version needs); every dataset when none is named."""
    from kfm_gitops.dataset import list_slugs
    from kfm_gitops.versions import MANIFEST_FILE, is_version_dir

    known = list_slugs(config.root)
    digests: set[str] = set()
    for arg in targets or known:
        folder = Path(arg)
        if is_version_dir(folder):
            digests.update(version_digests(folder))
        elif "/" in arg or folder.is_dir() or arg not in known:
            raise KfmError(f"{arg} is neither a dataset slug nor a version folder",
                           hint=f"datasets here: {', '.join(known) or 'none'}; a version folder holds {MANIFEST_FILE}")
        else:
            digests.update(dataset_digests(config, arg))
    return digests
