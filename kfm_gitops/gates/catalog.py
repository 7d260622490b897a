"""Gate D, catalog: the version's DCAT, STAC and PROV records validate (the catalog step's own validators: pystac's
schemas, pyshacl with kfm's DCAT profile, the prov package and the lineage rules), every link and EvidenceRef in
them resolves, the three agree with the manifest on every digest, and the catalog files are the ones the manifest
and the roll-up's receipt list, byte for byte."""

from __future__ import annotations

from kfm_gitops.findings import Finding, Location
from kfm_gitops.gates.model import GateResult, verdict
from kfm_gitops.gates.target import RESTORE, Target
from kfm_gitops.identity import sha256_digest
from kfm_gitops.versions import MANIFEST_FILE

GATE = "D"
CATALOG_DIR = "catalog"


def check(target: Target) -> GateResult:
    from kfm_gitops.catalog import validate_catalogs

    if target.version is None:
        return verdict(GATE, (), target.problems)
    result = validate_catalogs(target.config.root, target.folder, target.store, vocab=target.config.vocab)
    evaluated = []
    if result.checked:
        resolved = sum(1 for link in result.links if link.get("status") == "RESOLVED")
        evaluated.append(f"{len(result.checked)} catalog file(s) validated (DCAT, STAC, PROV); {resolved} of "
                         f"{len(result.links)} link(s) resolved; digests agreed with the manifest")
    count, findings = listed(target)
    if count:
        evaluated.append(f"{count} catalog file(s) match the manifest's and the roll-up receipt's digests")
    return verdict(GATE, evaluated, [*result.findings, *findings])


def listed(target: Target) -> tuple[int, list[Finding]]:
    """The catalog files are those the manifest lists (and the roll-up's receipt records), with those digests."""
    assert target.version is not None
    entries = target.version.data.get("catalogs")
    where = target.where(MANIFEST_FILE)
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("path"), str)
                                                 for e in entries):
        return 0, [Finding("CATALOG_UNLISTED", "the manifest's catalogs is not a list of files with digests", where,
                           hint=RESTORE.format(path=f"{target.rel}/{MANIFEST_FILE}"))]
    recorded = {str(o.get("uri")): o.get("digest") for o in (target.rollup or {}).get("outputs", [])
                if isinstance(o, dict) and str(o.get("uri", "")).startswith(f"{CATALOG_DIR}/")}
    findings: list[Finding] = []
    named = {str(e["path"]): e.get("digest") for e in entries}
    for rel, digest in sorted(named.items()):
        path = target.folder / rel
        shown = f"{target.rel}/{rel}"
        actual = sha256_digest(path.read_bytes()) if path.is_file() else None
        if actual is None:
            findings.append(Finding("CATALOG_MISSING", f"the manifest lists {rel}, which is not there", Location(shown),
                                    hint=RESTORE.format(path=shown)))
        elif actual != digest or (target.rollup is not None and recorded.get(rel) != digest):
            findings.append(Finding("CATALOG_ALTERED", f"{rel} has the digest {actual}; the manifest records "
                                    f"{digest} and the roll-up's receipt {recorded.get(rel)}", Location(shown),
                                    hint=RESTORE.format(path=shown)))
    on_disk = {p.relative_to(target.folder).as_posix() for p in (target.folder / CATALOG_DIR).rglob("*")
               if p.is_file()}
    findings += [Finding("CATALOG_UNLISTED", f"{rel} is not among the catalogs the manifest lists",
                         Location(f"{target.rel}/{rel}"), hint="a version folder is written once by the roll-up: "
                         "remove the file, or make a new version") for rel in sorted(on_disk - set(named))]
    return len(named), findings
