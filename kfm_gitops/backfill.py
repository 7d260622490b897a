"""The backfill run: every chunk of a plan goes acquire -> normalise/QA -> materialise -> receipt, up to the plan's
parallelism at once; then the roll-up assembles the new dataset version from its base and the window's partitions.

A chunk with a passing run for the same parameters is reused (no PROCESSED byte is read again) unless ``force``.
A run writes into .kfm/staging and renames its folder into place when complete, so an interrupted chunk leaves
nothing visible and starts clean next time.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfm_gitops._fs import RepoLock, atomic_write, fsync_dir, interrupts_deferred, probe_writable
from kfm_gitops.acquire import Frozen, fetch_chunk, freeze, plan_params, plan_terms, write_run
from kfm_gitops.chunk import ChunkResult, clean, process_chunk
from kfm_gitops.config import Config
from kfm_gitops.dataset import Contract, require_contract
from kfm_gitops.errors import FindingsError, KfmError
from kfm_gitops.findings import Finding, Location
from kfm_gitops.identity import IdentityError, PartitionContent, dataset_version_id, digest_of, sha256_digest
from kfm_gitops.periods import Period, iso_utc, periods
from kfm_gitops.plan import VERSION_MANIFEST, Plan, select_chunks, set_expected_version
from kfm_gitops.policy import Decision, decide, load_bundle
from kfm_gitops.qa import gap_notes
from kfm_gitops.receipts import RECEIPT_FILE, actor, environment, make_receipt, new_run_id, run_folder_name
from kfm_gitops.store import Store

MANIFEST = VERSION_MANIFEST


def pretty(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


@dataclass(slots=True)
class ChunkRun:
    key: str
    state: str = "pending"  # pending, running, reused, done, empty, quarantined, failed
    run_folder: str | None = None
    receipt_digest: str | None = None
    partitions: list[dict[str, Any]] = field(default_factory=list)  # partition, digest, raw, rows, ...
    raw: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    rows: tuple[int, int, int] = (0, 0, 0)  # total, accepted, quarantined


@dataclass(slots=True)
class BackfillResult:
    chunks: list[ChunkRun]
    version: str | None = None
    version_folder: str | None = None
    notes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings + [f for c in self.chunks for f in c.findings])


def chunk_params(plan: Plan, contract: Contract, chunk: Period, policy_bundle: str = "") -> str:
    """What makes a chunk's run the same run: the plan (without the expected id), the chunk, the contract, and the
    policies it was decided under (a policy changed since means a run made under the old one is not reused)."""
    return digest_of({"operation": "process", "plan": plan_params(plan), "chunk": chunk.key,
                      "spec_hash": contract.spec_hash, "policies": policy_bundle})


def runs_of(root: Path, slug: str) -> list[tuple[Path, dict[str, Any]]]:
    base = root / "releases" / slug / "runs"
    out = []
    for p in sorted(base.glob(f"*/{RECEIPT_FILE}")) if base.is_dir() else []:
        try:
            out.append((p.parent, json.loads(p.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue
    return out


def reusable(root: Path, slug: str, key: str, params: str, store: Store) -> tuple[Path, dict[str, Any]] | None:
    """The newest passing run of this chunk with these parameters whose partitions are all in the store."""
    for folder, receipt in reversed(runs_of(root, slug)):
        if receipt.get("operation") != "process" or receipt.get("chunk", {}).get("key") != key:
            continue
        if receipt.get("environment", {}).get("params_digest") != params:
            continue
        if receipt.get("validation", {}).get("status") not in ("pass", "warn"):
            continue
        outputs = [o for o in receipt.get("outputs", []) if str(o.get("role", "")).startswith("partition:")]
        if all(store.exists(o["digest"]) for o in outputs):
            return folder, receipt
    return None


def _from_receipt(run: ChunkRun, folder: Path, receipt: dict[str, Any], root: Path) -> None:
    run.run_folder = folder.relative_to(root).as_posix()
    run.receipt_digest = sha256_digest((folder / RECEIPT_FILE).read_bytes())
    raw = [i["digest"] for i in receipt.get("inputs", []) if i.get("role") not in ("terms", "acquisition")]
    run.raw = sorted(set(raw))
    run.partitions = [{"partition": o["role"].split(":", 1)[1], "digest": o["digest"]}
                      for o in receipt.get("outputs", []) if str(o.get("role", "")).startswith("partition:")]
    qa = folder / "qa.json"
    if qa.is_file():
        rows = json.loads(qa.read_text())["rows"]
        run.rows = (rows["total"], rows["accepted"], rows["quarantined"])


def processing_input(config: Config, plan: Plan, contract: Contract, terms: dict[str, Any] | None
                     ) -> dict[str, Any]:
    """What the processing policy decides on: the label, its vocabulary, the obligations, licence and rights."""
    from kfm_gitops.policy import normalized

    lic = contract.dataset.data.get("license") or None
    return {
        "label": plan.label,
        "vocabulary": {"labels": list(config.vocab.policy_labels)},
        "obligations": sorted({normalized(o)["type"] for o in plan.obligations}),
        "license": {k: v for k, v in lic.items() if k in ("spdx", "url")} if lic else None,
        "terms": {"digest": terms["digest"]} if terms else None,
    }


def decide_processing(config: Config, plan: Plan, contract: Contract, terms: dict[str, Any] | None) -> Decision:
    """The processing decision for a plan; an engine that cannot decide stops everything (an empty policy set is a
    deny that quarantines, not an error)."""
    decision, problems = decide(config.root, "processing", processing_input(config, plan, contract, terms))
    if problems and not any(f.code == "POLICY_EMPTY" for f in problems):
        raise FindingsError(problems, "the processing policy could not decide: nothing is processed")
    return decision


def process_in_staging(config: Config, plan: Plan, contract: Contract, manifest: dict[str, Any], chunk: Period,
                       store: Store, rid: str, decision: Decision) -> ChunkResult:
    """Run the chunk pipeline in a staging work folder that is removed whatever happens."""
    work = config.root / ".kfm" / "staging" / f"{run_folder_name(rid)}.work"
    try:
        return process_chunk(contract, manifest, chunk, store, work, plan.time_axis,
                             obligations=list(plan.obligations),
                             denied=None if decision.allow else list(decision.deny), plan_chunks=plan.chunks())
    finally:
        clean(work)


def run_files(result: ChunkResult, decision: Decision) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    """The run folder's documents beside the receipt, and the receipt's outputs for them and the partitions."""
    files = {name: pretty(doc) for name, doc in (("policy.json", decision.as_dict()), ("qa.json", result.qa),
                                                 ("quarantine.json", result.quarantine)) if doc}
    roles = {"policy.json": "policy_decision", "qa.json": "qa", "quarantine.json": "quarantine"}
    outputs = [{"uri": f"kfm://artifact/{p['digest']}", "digest": p["digest"], "role": f"partition:{p['partition']}"}
               for p in result.partitions]
    outputs += [{"uri": name, "digest": sha256_digest(data), "role": roles[name]} for name, data in files.items()]
    return files, outputs


def run_chunk(config: Config, plan: Plan, contract: Contract, chunk: Period, store: Store, frozen: Frozen,
              terms: dict[str, Any], run: ChunkRun, decision: Decision) -> None:
    """Acquire and process one chunk; one run folder with its receipt, QA report and quarantine record."""
    run.state = "running"
    rid = new_run_id(chunk.key)
    acquired = fetch_chunk(config, plan, contract, chunk, store, terms)
    run.findings.extend(acquired.findings)
    result = ChunkResult(chunk.key)
    if not acquired.failed and acquired.manifest is not None:
        manifest = json.loads((config.root / acquired.manifest).read_text(encoding="utf-8"))
        result = process_in_staging(config, plan, contract, manifest, chunk, store, rid, decision)
        run.findings.extend(result.findings)
    files, produced = run_files(result, decision)
    outputs = list(acquired.outputs[:1]) + produced
    receipt = make_receipt(
        root=config.root,
        rid=rid, slug=contract.slug, actor=actor(frozen.committer), operation="process",
        inputs=acquired.inputs, outputs=outputs,
        env=environment(frozen.git_commit, chunk_params(plan, contract, chunk, decision.bundle_digest)),
        findings=run.findings,
        chunk={"key": chunk.key, "start": iso_utc(chunk.start), "end": iso_utc(chunk.end)},
        plan=os.path.relpath(plan.path.resolve(), config.root.resolve()), decision_id=decision.decision_id,
        obligations_applied=result.obligations_applied, transforms_applied=result.transforms_applied,
    )
    folder, digest = write_run(config.root, contract.slug, rid, {RECEIPT_FILE: receipt.bytes, **files})
    run.run_folder, run.receipt_digest = folder, digest
    run.raw = sorted({i["digest"] for i in acquired.inputs if i.get("role") != "terms"})
    run.partitions = [{"partition": p["partition"], "digest": p["digest"]} for p in result.partitions]
    if result.qa:
        rows = result.qa["rows"]
        run.rows = (rows["total"], rows["accepted"], rows["quarantined"])
    if any(f.severity == "error" for f in run.findings) and not result.quarantined_whole:
        run.state = "failed"
    elif result.quarantined_whole:
        run.state = "quarantined"
    elif result.empty:
        run.state = "empty"
    else:
        run.state = "done"


def base_manifest(root: Path, slug: str, base: str) -> dict[str, Any]:
    if not base:
        return {}
    path = root / "releases" / slug / base / MANIFEST
    if not path.is_file():
        raise KfmError(f"the base version {base} has no {MANIFEST}", hint="the plan's prior_dataset_version_id must "
                       "name a version of this repository")
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def base_partitions(root: Path, slug: str, base: str) -> dict[str, dict[str, Any]]:
    return {p["partition"]: p for p in base_manifest(root, slug, base).get("partitions", [])}


def roll_up(config: Config, plan: Plan, contract: Contract, runs: list[ChunkRun], frozen: Frozen,
            result: BackfillResult, decision: Decision) -> None:
    """Assemble the version: the base's partitions with the window's replaced by the new ones."""
    slug = contract.slug
    if not decision.allow:
        result.findings.append(Finding("ROLLUP_BLOCKED", "no version: the processing policy denies this data ("
                                       + ", ".join(decision.deny) + ")", None,
                                       hint="runs made before the policy changed are not enough; fix and run again"))
        return
    blocked = [r for r in runs if r.state in ("quarantined", "failed")]
    if blocked:
        result.findings.append(Finding(
            "ROLLUP_BLOCKED", "no version: chunk(s) " + ", ".join(f"{r.key} ({r.state})" for r in blocked)
            + " did not pass", None, hint="fix the data or shrink the window; no partial promotion"))
        return
    base = plan.prior_version
    carried = base_partitions(config.root, slug, base)
    from kfm_gitops.periods import get_zone

    zone = get_zone(contract.partitioning["timezone"])
    window = [p.key for p in periods(plan.start, plan.end, contract.partitioning["mode"], zone)]  # type: ignore[arg-type]
    window_keys = set(window)
    outside = sorted(k for k in carried if k not in window_keys)
    if outside:
        # One label per version: partitions carried from the base were made under its label and obligations.
        base_policy = base_manifest(config.root, slug, base).get("policy", {})
        mine = {"policy_label": plan.label, "obligations": [dict(o) for o in plan.obligations]}
        theirs = {"policy_label": base_policy.get("policy_label"), "obligations": base_policy.get("obligations", [])}
        if mine != theirs:
            result.findings.append(Finding(
                "ROLLUP_POLICY_MISMATCH", f"the base version {base} was made under label "
                f"{theirs['policy_label']!r} and other obligations; its partitions {', '.join(outside)} cannot be "
                f"carried into a version labelled {plan.label!r}", None,
                hint="a changed label or obligations means reprocessing every partition: widen the window"))
            return
    parts: dict[str, dict[str, Any]] = {k: v for k, v in carried.items() if k not in window_keys}
    new_keys = []
    for r in runs:
        for p in r.partitions:
            parts[p["partition"]] = {"partition": p["partition"], "processed": p["digest"], "raw": r.raw,
                                     "run": r.run_folder}
            new_keys.append(p["partition"])
    gaps = sorted(window_keys - set(new_keys))
    dropped = [g for g in gaps if g in carried]
    if dropped:
        result.findings.append(Finding(
            "PARTITION_DROPPED", f"partition(s) {', '.join(dropped)} of the base version {base} have no data in this "
            "backfill: the new version would unpublish them", None,
            hint="check the upstream for these periods, or shrink the window to leave them as they are"))
        return
    result.notes.extend(gap_notes(window, set(gaps), contract.partitioning["mode"]))
    if not parts:
        result.findings.append(Finding("ROLLUP_EMPTY", "the backfill produced no partition at all", None,
                                       hint="check the upstream for the window"))
        return
    contents = [PartitionContent(k, v["processed"], tuple(v["raw"])) for k, v in sorted(parts.items())]
    try:
        version = dataset_version_id(contract.spec_hash, contents)
    except IdentityError as exc:  # e.g. a base partitioned another way than the contract now says
        result.findings.append(Finding("ROLLUP_INVALID", f"no version: {exc}", None,
                                       hint="a changed partitioning means reprocessing every partition"))
        return
    if version == base:
        result.notes.append(f"the content equals the base version {base}: no new version")
        result.version = base
        return
    folder = config.root / "releases" / slug / version
    result.version = version
    result.version_folder = folder.relative_to(config.root).as_posix()
    with interrupts_deferred():  # the version folder and the plan's id land together
        probe_writable(plan.path.parent)  # a plan kfm cannot update stops the roll-up before the version lands
        if folder.exists():
            result.notes.append(f"version {version} exists already: reused")
        else:
            write_version(config, plan, contract, runs, frozen, version, base, parts, folder, decision)
        set_expected_version(plan.path, version)


def write_version(config: Config, plan: Plan, contract: Contract, runs: list[ChunkRun], frozen: Frozen,
                  version: str, base: str, parts: dict[str, dict[str, Any]], folder: Path, decision: Decision) -> None:
    from kfm_gitops.materialize import MEDIA_TYPE

    slug = contract.slug
    checksums = [{"partition": k, "path": f"processed/{slug}/{k}.parquet", "digest": v["processed"],
                  "media_type": MEDIA_TYPE} for k, v in sorted(parts.items())]
    checksums_bytes = pretty({"kfm_checksums_version": "v1", "dataset_slug": slug, "dataset_version_id": version,
                              "artifacts": checksums})
    qa = {"kfm_qa_summary_version": "v1", "dataset_slug": slug, "dataset_version_id": version, "chunks": [
        {"chunk": r.key, "state": r.state, "rows": {"total": r.rows[0], "accepted": r.rows[1],
                                                    "quarantined": r.rows[2]}, "run": r.run_folder} for r in runs],
          "status": "pass"}
    qa_bytes = pretty(qa)
    runs_doc = {"kfm_runs_version": "v1", "dataset_slug": slug, "dataset_version_id": version,
                "base_dataset_version_id": base or None,
                "runs": [{"chunk": r.key, "run_id": f"kfm://run/{Path(r.run_folder or '').name}",
                          "receipt": f"{r.run_folder}/{RECEIPT_FILE}", "digest": r.receipt_digest}
                         for r in runs if r.run_folder],
                "carried": sorted(k for k, v in parts.items() if "run" not in v)}
    runs_bytes = pretty(runs_doc)
    manifest = {
        "kfm_promotion_manifest_version": "v1",
        "dataset_slug": slug,
        "dataset_version_id": version,
        "spec_hash": contract.spec_hash,
        "base_dataset_version_id": base or None,
        "partitions": [{"partition": k, "processed": v["processed"], "raw": sorted(v["raw"])}
                       for k, v in sorted(parts.items())],
        "artifacts": [{"path": c["path"], "digest": c["digest"], "media_type": c["media_type"]} for c in checksums],
        "catalogs": [],
        "qa": {"status": "pass", "report_digest": sha256_digest(qa_bytes)},
        "policy": {"policy_label": plan.label, "decision_id": decision.decision_id,
                   "obligations": [dict(o) for o in plan.obligations]},
        "checksums_digest": sha256_digest(checksums_bytes),
        "runs_digest": sha256_digest(runs_bytes),
        "plan": os.path.relpath(plan.path.resolve(), config.root.resolve()),
    }
    manifest_bytes = pretty(manifest)
    rid = new_run_id(sorted(parts)[-1])
    receipt = make_receipt(
        root=config.root,
        rid=rid, slug=slug, actor=actor(frozen.committer), operation="rollup",
        inputs=[{"uri": f"{r.run_folder}/{RECEIPT_FILE}", "digest": r.receipt_digest or ""} for r in runs
                if r.run_folder and r.receipt_digest],
        outputs=[{"uri": MANIFEST, "digest": sha256_digest(manifest_bytes)},
                 {"uri": "checksums.json", "digest": sha256_digest(checksums_bytes)},
                 {"uri": "qa.json", "digest": sha256_digest(qa_bytes)},
                 {"uri": "runs.json", "digest": sha256_digest(runs_bytes)}],
        env=environment(frozen.git_commit, digest_of({"operation": "rollup", "plan": plan_params(plan)})),
        findings=[], dataset_version_id=version, plan=str(manifest["plan"]), decision_id=decision.decision_id,
    )
    staging = config.root / ".kfm" / "staging" / f"version-{version}"
    if staging.exists():
        shutil.rmtree(staging)
    for name, data in ((MANIFEST, manifest_bytes), ("checksums.json", checksums_bytes), ("qa.json", qa_bytes),
                       ("runs.json", runs_bytes), (RECEIPT_FILE, receipt.bytes)):
        atomic_write(staging / name, data)
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, folder)
    fsync_dir(folder.parent)


def run_backfill(config: Config, plan: Plan, store: Store, *, keys: list[str] | None = None, jobs: int | None = None,
                 force: bool = False, rollup_only: bool = False,
                 on_change: Callable[[ChunkRun], None] | None = None) -> BackfillResult:
    contract = require_contract(config.root, plan.slug, config.vocab)
    chunks = plan.chunks()
    selected = [] if rollup_only else select_chunks(plan, keys)
    runs = {c.key: ChunkRun(c.key) for c in chunks}
    notify = on_change or (lambda r: None)
    with RepoLock(config.root):
        frozen = freeze(config, plan, contract)
        terms = plan_terms(config, plan, store)
        decision = decide_processing(config, plan, contract, terms)
        todo = []
        for c in chunks:
            found = None if (force and c in selected) else reusable(
                config.root, contract.slug, c.key, chunk_params(plan, contract, c, decision.bundle_digest), store)
            if found is not None:
                _from_receipt(runs[c.key], found[0], found[1], config.root)
                runs[c.key].state = "reused"
                notify(runs[c.key])
            elif c in selected:
                todo.append(c)

        def one(c: Period) -> None:
            runs[c.key].state = "running"
            notify(runs[c.key])
            try:
                run_chunk(config, plan, contract, c, store, frozen, terms, runs[c.key], decision)
            except KfmError as exc:
                runs[c.key].findings.append(Finding("CHUNK_FAILED", exc.message, None, hint=exc.hint))
                runs[c.key].state = "failed"
            except Exception as exc:  # one chunk's failure is a finding; the other chunks go on
                if os.environ.get("KFM_DEBUG") == "1":
                    import traceback

                    traceback.print_exc()
                # An OSError says what the machine refused and where; other exceptions may quote data, so only
                # their type is said.
                what = (f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.strerror
                        and exc.filename else type(exc).__name__)
                runs[c.key].findings.append(Finding("CHUNK_FAILED", f"chunk {c.key}: {what} while processing",
                                                    None, hint="re-run with --debug for the traceback"))
                runs[c.key].state = "failed"
            notify(runs[c.key])

        workers = max(1, min(jobs or plan.max_parallelism, plan.max_parallelism, len(todo) or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, todo))
        result = BackfillResult([runs[c.key] for c in chunks])
        missing = [r.key for r in result.chunks if r.state == "pending"]
        if missing:
            message = (f"not rolled up: chunk(s) {', '.join(missing)} have no passing run yet (run them, here or on "
                       "other machines sharing the store, then `kfm backfill rollup`)")
            if rollup_only or not keys:
                result.findings.append(Finding("ROLLUP_INCOMPLETE", message, None))
            else:
                result.notes.append(message)
            return result
        roll_up(config, plan, contract, result.chunks, frozen, result, decision)
    return result


def dry_run(config: Config, plan: Plan, store: Store) -> list[dict[str, Any]]:
    """What a run would do, chunk by chunk; writes nothing."""
    from kfm_gitops.connectors import Window, expand
    from kfm_gitops.periods import get_zone

    contract = require_contract(config.root, plan.slug, config.vocab)
    part = contract.partitioning
    zone = get_zone(part["timezone"])
    params = contract.pipeline.data["connector"]["params"]
    template = params.get("url") or f"{params.get('root', '')}/{params.get('pattern', '')}"
    out = []
    for c in plan.chunks():
        found = reusable(config.root, contract.slug, c.key,
                         chunk_params(plan, contract, c, load_bundle(config.root).digest), store)
        out.append({
            "chunk": c.key, "start": iso_utc(c.start), "end": iso_utc(c.end),
            "sources": expand(template, Window(c.key, c.start, c.end, zone)),
            "partitions": [p.key for p in periods(c.start, c.end, part["mode"], zone)],  # type: ignore[arg-type]
            "reuse": found[0].relative_to(config.root).as_posix() if found else None,
        })
    return out


def process_acquired(config: Config, plan: Plan, key: str, store: Store) -> tuple[ChunkResult, str]:
    """`kfm process`: one chunk from its current acquisition to a run folder, under the same policy decision and
    obligations as a backfill run. Returns the result and the run folder."""
    from kfm_gitops.acquire import current_acquisition

    contract = require_contract(config.root, plan.slug, config.vocab)
    chunk = select_chunks(plan, [key])[0]
    with RepoLock(config.root):
        frozen = freeze(config, plan, contract)
        mpath, manifest = current_acquisition(config.root, plan.slug, key)
        decision = decide_processing(config, plan, contract, manifest.get("terms"))
        rid = new_run_id(key)
        result = process_in_staging(config, plan, contract, manifest, chunk, store, rid, decision)
        files, outputs = run_files(result, decision)
        manifest_rel = mpath.relative_to(config.root).as_posix()
        receipt = make_receipt(
            root=config.root,
            rid=rid, slug=plan.slug, actor=actor(frozen.committer), operation="process",
            inputs=[{"uri": manifest_rel, "digest": sha256_digest(mpath.read_bytes()), "role": "acquisition"},
                    *result.inputs],
            outputs=outputs,
            env=environment(frozen.git_commit, digest_of({"operation": "process", "chunk": key,
                                                          "acquisition": manifest["acquisition_id"],
                                                          "spec_hash": contract.spec_hash,
                                                          "policies": decision.bundle_digest})),
            findings=result.findings, chunk={"key": key, "start": iso_utc(chunk.start), "end": iso_utc(chunk.end)},
            plan=os.path.relpath(plan.path.resolve(), config.root.resolve()), decision_id=decision.decision_id,
            obligations_applied=result.obligations_applied, transforms_applied=result.transforms_applied,
        )
        folder, _ = write_run(config.root, plan.slug, rid, {RECEIPT_FILE: receipt.bytes, **files})
    return result, folder


def version_digests(folder: Path) -> set[str]:
    """Every object a version needs: its partitions, the RAW objects they were made from, and the terms snapshots
    of the acquisitions that hold those (so that `kfm raw verify` passes on a store that received the version)."""
    from kfm_gitops.acquire import read_manifests

    doc = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    out: set[str] = set()
    raw: set[str] = set()
    for p in doc.get("partitions", []):
        out.add(p["processed"])
        raw.update(p.get("raw", []))
    out |= raw
    root = folder.resolve().parent.parent.parent  # <root>/releases/<slug>/<version>
    for _, manifest in read_manifests(root, str(doc.get("dataset_slug", ""))):
        try:
            if raw & {o["digest"] for o in manifest["objects"]}:
                out.add(manifest["terms"]["digest"])
        except (KeyError, TypeError):
            continue  # `kfm raw verify` reports malformed manifests
    return out


def matrix(plan: Plan) -> dict[str, Any]:
    return {"include": [{"chunk": c.key} for c in plan.chunks()]}


__all__ = ["BackfillResult", "ChunkRun", "Location", "dry_run", "matrix", "run_backfill"]
