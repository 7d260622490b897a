"""Gate A, identity: the version's ids are present and well-formed, its spec_hash recomputes from the contract it
was made under, its id recomputes from its partitions, and every object its partitions name (new and carried, the
PROCESSED artifact and the RAW objects it was made from) is in the store with bytes that hash to its name."""

from __future__ import annotations

from collections.abc import Callable

from kfm_gitops.findings import Finding
from kfm_gitops.gates.model import GateResult, verdict
from kfm_gitops.gates.target import Target, rehash, store_problem
from kfm_gitops.identity import IdentityError, PartitionContent, check_digest, check_slug, dataset_version_id
from kfm_gitops.versions import MANIFEST_FILE

GATE = "A"
EDITED = "version folders are written by the roll-up and never edited: restore it from git"
RESTORE_OBJECT = ("restore the object from the shared store (`kfm store pull`), or acquire and run the chunk again; "
                  "if the manifest was edited, restore it from git")


def check(target: Target) -> GateResult:
    if target.version is None:
        return verdict(GATE, (), target.problems)
    evaluated: list[str] = []
    findings: list[Finding] = []
    evaluated_ids, id_findings = ids(target)
    evaluated += evaluated_ids
    findings += id_findings
    _spec_hash(target, evaluated, findings)
    _objects(target, evaluated, findings)
    return verdict(GATE, evaluated, findings)


def ids(target: Target) -> tuple[list[str], list[Finding]]:
    """The slug, the version id (well-formed, the folder's name, recomputed from the partitions), the run ids and
    every digest the manifest names: (evaluated, findings). Needs no store."""
    from kfm_gitops.identity import parse_run_id, parse_version_id

    version = target.version
    assert version is not None
    findings: list[Finding] = []
    where = target.where(MANIFEST_FILE)
    tries: list[tuple[str, Callable[[str], object], str]] = [("slug", check_slug, version.slug),
                                                             ("version id", parse_version_id, version.version_id)]
    tries += [(f"digest of partition {p.key}", check_digest, d) for p in version.partitions
              for d in (p.processed, *p.raw)]
    tries += [(f"run id of chunk {r.chunk}", parse_run_id, r.run_id) for r in target.runs]
    for what, parse, value in tries:
        try:
            parse(value)
        except IdentityError as exc:
            findings.append(Finding("ID_INVALID", f"{what}: {exc.message}", where, hint=EDITED))
    if tuple(target.rel.split("/")[-2:]) != (version.slug, version.version_id):
        findings.append(Finding("ID_MISMATCH", f"the folder {target.rel} holds the manifest of {version.slug} "
                                f"{version.version_id}", where, hint="a version lives in releases/<slug>/<version>/"))
    findings.extend(_recomputed(target))
    return [f"ids of {version.slug} {version.version_id}: slug, version id (recomputed), {len(target.runs)} run "
            f"id(s), {len(tries) - 2 - len(target.runs)} digest(s)"], findings


def _recomputed(target: Target) -> list[Finding]:
    """The version id, recomputed from the manifest's spec_hash and partitions."""
    version = target.version
    assert version is not None
    where = target.where(MANIFEST_FILE)
    try:
        recomputed = dataset_version_id(version.spec_hash, [PartitionContent(p.key, p.processed, p.raw)
                                                              for p in version.partitions])
    except IdentityError as exc:
        return [Finding("ID_INVALID", f"the version id cannot be recomputed: {exc.message}", where, hint=EDITED)]
    if recomputed != version.version_id:
        return [Finding("VERSION_ID_MISMATCH", f"the manifest's spec_hash and partitions give the id {recomputed}, "
                        f"not {version.version_id}", where, hint=EDITED)]
    return []


def _spec_hash(target: Target, evaluated: list[str], findings: list[Finding]) -> None:
    if target.contract is None:
        assert target.contract_problem is not None
        findings.append(target.contract_problem)
        return
    evaluated.append(f"spec_hash recomputed from {target.contract.path} and pipeline.yaml "
                     f"({target.contract.source})")


def _objects(target: Target, evaluated: list[str], findings: list[Finding]) -> None:
    """Every object of every partition, re-hashed in the store on all cores (new partitions by the run that made
    them, carried ones by the digests the manifest carries from the base)."""
    version = target.version
    assert version is not None
    store = target.store
    where = target.where(MANIFEST_FILE)
    unreachable = store_problem(GATE, "every object of the version", store, where)
    if store is None or unreachable is not None:
        findings.extend([unreachable] if unreachable else [])
        return
    named: dict[str, list[tuple[str, str]]] = {}
    for p in version.partitions:
        named.setdefault(p.processed, []).append((where.path, f"partition {p.key}: PROCESSED"))
        for r in p.raw:
            named.setdefault(r, []).append((where.path, f"partition {p.key}: RAW object"))
    count, problems = rehash(target, {d: w for d, w in named.items() if _well_formed(d)}, "promotion manifest",
                             RESTORE_OBJECT)
    findings += problems
    carried = sum(1 for k in version.partition_keys if k in target.carried)
    evaluated.append(f"{len(version.partitions) - carried} new and {carried} carried partition(s): "
                     f"{count} object(s) re-hashed in {store.url}")


def _well_formed(digest: str) -> bool:
    try:
        check_digest(digest)
    except IdentityError:
        return False
    return True
