"""Gate G, manifest: the promotion manifest is complete and its digests match (artifacts, checksums.json, runs.json,
the roll-up receipt's record of the version's files); its partitions are exactly its base's carried ones (same
digests) and those its runs made; the plan's expected_dataset_version_id is the version and its expected_outputs
(when it lists them) the new partitions. On a release, the promotion rules: the pointer names this version with its
manifest's digest; a forward promotion builds on what is published now; a rollback goes to a version the ledger
published before; a version a rollback superseded comes back only with a ``republish`` reason."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kfm_gitops.findings import Finding, Location
from kfm_gitops.gates.model import GateResult, ReleaseContext, verdict
from kfm_gitops.gates.target import RESTORE, Target, missing_input, read_json
from kfm_gitops.identity import sha256_digest
from kfm_gitops.versions import CHECKSUMS_FILE, MANIFEST_FILE, PUBLISHED_FILE, QA_FILE, RUNS_FILE

GATE = "G"
REPUBLISH = "republish"
MANIFEST_VERSION = "v1"


def check(target: Target) -> GateResult:
    version = target.version
    if version is None:
        return verdict(GATE, (), target.problems)
    findings = [*consistency(target), *_lineage(target), *_plan(target)]
    evaluated = [f"manifest of {version.version_id}: {len(version.partitions)} partition(s), artifacts, checksums, "
                 f"runs and the roll-up's record of its files; the plan {version.plan}"]
    if target.release is not None:
        findings += promotion_rules(target, target.release)
        evaluated.append(f"promotion rules for {target.release.slug} -> {target.release.version_id}")
    return verdict(GATE, evaluated, findings)


def consistency(target: Target) -> list[Finding]:
    """The manifest against the files beside it: complete, and the digests it and the roll-up record match. Needs
    no store and no other version."""
    return [*_complete(target), *_files(target)]


def _complete(target: Target) -> list[Finding]:
    """Every partition once, with its artifact; checksums.json says the same."""
    version = target.version
    assert version is not None
    where, data = target.where(MANIFEST_FILE), version.data
    problems = []
    if data.get("kfm_promotion_manifest_version") != MANIFEST_VERSION:
        problems.append(f"kfm_promotion_manifest_version is not {MANIFEST_VERSION!r}")
    keys = version.partition_keys
    if keys != sorted(set(keys)):
        problems.append("partitions are not each listed once, in order")
    artifacts: list[Any] = data["artifacts"] if isinstance(data.get("artifacts"), list) else []
    have = {str(a.get("digest")) for a in artifacts if isinstance(a, dict) and a.get("media_type")}
    problems += [f"partition {p.key} has no entry in artifacts" for p in version.partitions if p.processed not in have]
    if len(artifacts) > len(version.partitions):
        problems.append(f"{len(artifacts)} artifacts for {len(version.partitions)} partition(s)")
    problems += _checksums(target)
    return [Finding("MANIFEST_INCOMPLETE", f"the promotion manifest: {p}", where,
                    hint=RESTORE.format(path=f"{target.rel}/{MANIFEST_FILE}")) for p in problems]


def _checksums(target: Target) -> list[str]:
    assert target.version is not None
    got = read_json(target.config.root, f"{target.rel}/{CHECKSUMS_FILE}")
    if isinstance(got, Finding):
        return [f"{CHECKSUMS_FILE} cannot be read ({got.code})"]
    doc, data = got
    out = []
    if target.version.data.get("checksums_digest") != sha256_digest(data):
        out.append(f"checksums_digest is not the digest of {CHECKSUMS_FILE}")
    listed: list[Any] = doc["artifacts"] if isinstance(doc, dict) and isinstance(doc.get("artifacts"), list) else []
    pairs = sorted((str(a.get("partition")), str(a.get("digest"))) for a in listed if isinstance(a, dict))
    if pairs != sorted((p.key, p.processed) for p in target.version.partitions):
        out.append(f"{CHECKSUMS_FILE} does not list the same partitions and digests")
    return out


def _files(target: Target) -> list[Finding]:
    """The version's files are those its roll-up wrote: the digests its receipt records, runs.json the manifest's."""
    assert target.version is not None
    if target.rollup is None:
        return [missing_input(GATE, "the version's files without its roll-up receipt", "F")]
    recorded = {str(o.get("uri")): o.get("digest") for o in target.rollup.get("outputs", []) if isinstance(o, dict)}
    findings = []
    for name in (MANIFEST_FILE, CHECKSUMS_FILE, QA_FILE, RUNS_FILE):
        path = target.folder / name
        actual = sha256_digest(path.read_bytes()) if path.is_file() else None
        if actual is None or recorded.get(name) != actual:
            findings.append(Finding("MANIFEST_ALTERED" if actual else "VERSION_FILE_MISSING",
                                    f"{name} is {'not the file' if actual else 'missing, unlike the file'} the "
                                    f"roll-up wrote ({recorded.get(name)})", target.where(name),
                                    hint=RESTORE.format(path=f"{target.rel}/{name}")))
    runs = target.folder / RUNS_FILE
    if runs.is_file() and target.version.data.get("runs_digest") != sha256_digest(runs.read_bytes()):
        findings.append(Finding("MANIFEST_INCOMPLETE", f"runs_digest is not the digest of {RUNS_FILE}",
                                target.where(MANIFEST_FILE), hint=RESTORE.format(path=f"{target.rel}/{RUNS_FILE}")))
    return findings


def _lineage(target: Target) -> list[Finding]:
    """The partitions are the base's carried ones (same digests) and those the version's runs made."""
    version = target.version
    assert version is not None
    where, findings = target.where(RUNS_FILE), list(target.runs_problems)
    if target.base_problem is not None:
        findings.append(target.base_problem)
    base = {p.key: p for p in target.base.partitions} if target.base is not None else {}
    mine = {p.key: p for p in version.partitions}
    for key in sorted(set(target.carried) | (set(base) - set(mine))):
        ours, theirs = mine.get(key), base.get(key)
        if ours is None or theirs is None or (ours.processed, sorted(ours.raw)) != (theirs.processed,
                                                                                   sorted(theirs.raw)):
            findings.append(Finding("CARRIED_MISMATCH", f"partition {key} is not carried unchanged from the base "
                                    f"{version.base or '(none)'}", where, hint="a version keeps every partition of "
                                    "its base it does not remake, with its digests: restore the files from git"))
    made: dict[str, tuple[str, list[str]]] = {}  # partition -> (digest, RAW digests) of the run that made it
    for run in target.runs:
        if run.receipt is None:
            findings.append(missing_input(GATE, f"the partitions of chunk {run.chunk} without its receipt", "F"))
            continue
        raw = sorted({str(i.get("digest")) for i in run.receipt.get("inputs", []) if isinstance(i, dict)
                      and i.get("role") not in ("terms", "acquisition")})
        made.update({k: (d, raw) for k, d in run.partitions.items()})
    for key in target.new_keys:
        p = mine[key]
        if made.get(key) != (p.processed, sorted(p.raw)) and not any(f.code == "GATE_INPUT_MISSING" for f in findings):
            findings.append(Finding("PARTITION_UNPRODUCED", f"partition {key} ({p.processed}) is not what a run of "
                                    f"this version made", target.where(MANIFEST_FILE),
                                    hint="a new partition is the output of one of the runs runs.json lists"))
    dropped = sorted(set(made) - set(mine))
    if dropped:
        findings.append(Finding("PARTITION_DROPPED", f"partition(s) {', '.join(dropped)} made by the version's runs "
                                "are not in the manifest", target.where(MANIFEST_FILE),
                                hint=RESTORE.format(path=f"{target.rel}/{MANIFEST_FILE}")))
    return findings


def _plan(target: Target) -> list[Finding]:
    """The plan that asked for the version expects it: its id, and its expected outputs when it lists them."""
    from kfm_gitops import _yaml

    version = target.version
    assert version is not None
    rel = version.plan
    doc = _yaml.load(target.file(rel), shown=rel) if rel else None
    if not isinstance(doc, _yaml.Document) or not isinstance(doc.data, dict):
        return [Finding("PLAN_UNREADABLE", f"the version's plan {rel or '(none named)'} cannot be read",
                        target.where(MANIFEST_FILE), hint="commit the plan with its version's evidence")]
    findings = []
    expected = (doc.data.get("promotion") or {}).get("expected_dataset_version_id")
    if expected != version.version_id:
        findings.append(Finding("PLAN_EXPECTS_OTHER", f"the plan expects {expected!r}, not {version.version_id}",
                                doc.locate(("promotion", "expected_dataset_version_id")),
                                hint="the roll-up writes the id it made into the plan: commit the plan it updated"))
    outputs = doc.data.get("expected_outputs")
    if isinstance(outputs, list):
        digests = {p.key: p.processed for p in version.partitions}
        want = sorted(str(o.get("partition")) for o in outputs if isinstance(o, dict))
        wrong = [o for o in outputs if isinstance(o, dict) and o.get("digest") not in (None, digests.get(
            str(o.get("partition"))))]
        if want != sorted(target.new_keys) or wrong:
            findings.append(Finding("PLAN_OUTPUTS_DIFFER", f"the plan expects the partitions {', '.join(want)}; the "
                                    f"version made {', '.join(sorted(target.new_keys))}"
                                    + (" (and other digests)" if wrong else ""), doc.locate(("expected_outputs",)),
                                    hint="a version makes exactly what its plan expects"))
    return findings


# --- the promotion rules --------------------------------------------------------------------------------------------


def promotion_rules(target: Target, release: ReleaseContext) -> list[Finding]:
    """What a release PR may publish: the version the pointer names, on top of what is published now, or back."""
    version = target.version
    assert version is not None
    where = Location(f"releases/{release.slug}/{PUBLISHED_FILE}")
    findings = []
    if (release.slug, release.version_id) != (version.slug, version.version_id):
        findings.append(Finding("POINTER_MISMATCH", f"the pointer names {release.slug} {release.version_id}, not "
                                f"the version folder {target.rel}", where))
    manifest = target.folder / MANIFEST_FILE
    if manifest.is_file() and sha256_digest(manifest.read_bytes()) != release.manifest_digest:
        findings.append(Finding("POINTER_DIGEST", f"the pointer's manifest_digest {release.manifest_digest} is not "
                                f"the digest of {target.rel}/{MANIFEST_FILE}", where,
                                hint="propose the release again (`kfm release propose`): the pointer records the "
                                "manifest it publishes"))
    published, superseded = _standing(release.ledger)
    if release.version_id in superseded:
        if not release.reason.startswith(REPUBLISH):
            findings.append(Finding("REPUBLISH_REASON_MISSING", f"{release.version_id} was rolled back: it comes back "
                                    f"only with a reason starting {REPUBLISH!r}", where,
                                    hint=f'propose it with --reason "{REPUBLISH}: why it is safe again"'))
    elif release.version_id in published:
        pass  # a rollback to a version published before
    elif version.base != release.published_now:
        findings.append(Finding("STALE_BASE", f"{version.version_id} builds on {version.base or 'nothing'}, but "
                                f"{release.published_now or 'nothing'} is published now: promoting it would "
                                "silently drop what was published since", where,
                                hint=f"make a new plan on {release.published_now or 'the published version'} "
                                "(`kfm plan new`), run it and propose that version"))
    return findings


def _standing(ledger: bytes) -> tuple[set[str], set[str]]:
    """(versions the ledger published, versions a rollback superseded and nothing published again since)."""
    published: set[str] = set()
    superseded: set[str] = set()
    for line in ledger.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # gate F reports a broken ledger
        subject = entry.get("subject") if isinstance(entry, dict) else None
        if not isinstance(subject, Mapping):
            continue
        version = str(subject.get("dataset_version_id"))
        published.add(version)
        superseded.discard(version)
        if entry.get("event_type") == "rollback" and entry.get("supersedes"):
            superseded.add(str(entry["supersedes"]))
    return published, superseded
