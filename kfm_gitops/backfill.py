"""The backfill run: every chunk of a plan goes acquire -> normalise/QA -> materialise -> receipt, up to the plan's
parallelism at once; then the roll-up assembles the new dataset version from its base and the window's partitions.

A chunk with a passing run for the same parameters is reused unless ``force``, once its artifacts are checked
against the store (digests and sizes, streamed, in parallel): a chunk whose artifact is corrupt runs again.
A run writes into .kfm/staging and renames its folder into place when complete, so an interrupted chunk leaves
nothing visible and starts clean next time.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kfm_gitops._fs import (
    RepoLock,
    display_path,
    interrupts_deferred,
    json_bytes,
    probe_writable,
    staging_dir,
)
from kfm_gitops.acquire import changes, fetch_chunk, plan_terms, superseded_by
from kfm_gitops.chunk import ChunkResult, clean, process_chunk
from kfm_gitops.config import Config
from kfm_gitops.dataset import Contract, require_contract
from kfm_gitops.errors import FindingsError, KfmError
from kfm_gitops.evidence import (
    Frozen,
    build_receipt,
    chunk_params,
    freeze,
    params_digest,
    plan_params,
    runs_of,
    write_run,
)
from kfm_gitops.findings import Finding, Location
from kfm_gitops.identity import IdentityError, PartitionContent, dataset_version_id, sha256_digest
from kfm_gitops.periods import Period, iso_utc, parse_key, periods
from kfm_gitops.plan import Plan, select_chunks, set_expected_version
from kfm_gitops.policy import Decision, decide, load_bundle
from kfm_gitops.qa import gap_notes
from kfm_gitops.receipts import RECEIPT_FILE, Receipt, new_run_id, now_utc
from kfm_gitops.store import Store
from kfm_gitops.versions import (
    CHECKSUMS_FILE,
    MANIFEST_FILE,
    POLICY_FILE,
    QA_FILE,
    QUARANTINE_FILE,
    RUNS_FILE,
    Partition,
    VersionManifest,
    carried_under_other_policy,
    compare_version,
    read_json,
    repo_path,
    require_base,
    run_folder_name,
    run_id_of,
    version_dir,
    write_version,
)


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
    quarantine: dict[str, int] = field(default_factory=dict)  # rows quarantined, by reason
    notes: list[str] = field(default_factory=list)
    acquisition: str | None = None  # the acquisition manifest the run was made from (a repository path)


@dataclass(slots=True)
class BackfillResult:
    chunks: list[ChunkRun]
    version: str | None = None
    version_folder: str | None = None
    notes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    next_step: str | None = None  # what to do next, when it is not committing the evidence
    elapsed: float = 0.0  # seconds

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings + [f for c in self.chunks for f in c.findings])

    def tally(self) -> dict[str, Any]:
        """The run in numbers: chunks by state, rows in, out and quarantined (by reason), the version, the time."""
        states = {s: sum(1 for c in self.chunks if c.state == s) for s in ("done", "empty", "reused", "failed",
                                                                        "quarantined", "pending")}
        reasons: dict[str, int] = {}
        for c in self.chunks:
            for reason, n in c.quarantine.items():
                reasons[reason] = reasons.get(reason, 0) + n
        return {"chunks": states, "rows": {"in": sum(c.rows[0] for c in self.chunks),
                                           "out": sum(c.rows[1] for c in self.chunks),
                                           "quarantined": sum(c.rows[2] for c in self.chunks)},
                "quarantine": dict(sorted(reasons.items())), "version": self.version,
                "elapsed_s": round(self.elapsed, 1)}


def reusable(config: Config, slug: str, key: str, params: str, store: Store) -> tuple[Path, dict[str, Any]] | None:
    """The newest passing run of this chunk with these parameters whose partitions are all in the store."""
    for folder, receipt in reversed(runs_of(config, slug)):
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
    run.acquisition = acquisition_of(receipt)
    qa, quarantine = _run_document(folder, QA_FILE), _run_document(folder, QUARANTINE_FILE)
    if qa is not None:
        rows = qa["rows"]
        run.rows = (rows["total"], rows["accepted"], rows["quarantined"])
    if quarantine is not None:
        run.quarantine = dict(quarantine.get("counts", {}))


def acquisition_of(receipt: dict[str, Any]) -> str | None:
    """The acquisition manifest a chunk run was made from (a repository path), as its receipt names it."""
    return next((str(o["uri"]) for o in receipt.get("outputs", []) if o.get("role") == "acquisition"), None)


def _run_document(folder: Path, name: str) -> dict[str, Any] | None:
    """A run folder's qa.json or quarantine.json (None when the run has none); one that cannot be read stops the
    run with a finding where it is broken."""
    path = folder / name
    if not path.exists():
        return None
    hint = (f"run folders are never edited: restore it with `git checkout HEAD -- {display_path(folder)}`, or, if "
            "the run was never committed, remove its folder and run again")
    doc, problem = read_json(path, "RUN_INVALID", hint)
    shape = {QA_FILE: ("rows", dict), QUARANTINE_FILE: ("counts", dict)}[name]
    if problem is None and not (isinstance(doc, dict) and isinstance(doc.get(shape[0]), shape[1])):
        problem = Finding("RUN_INVALID", f"{shape[0]} is missing or malformed", Location(display_path(path)), hint=hint)
    if problem is not None:
        raise FindingsError([problem], f"the run {folder.name} cannot be reused")
    return dict(doc)


def processing_input(config: Config, plan: Plan, contract: Contract, terms: dict[str, Any] | None
                     ) -> dict[str, Any]:
    """What the processing policy decides on: the label, its vocabulary, the obligations, licence and rights."""
    from kfm_gitops.policy import decision_input

    return decision_input(config.vocab.policy_labels, plan.label, plan.obligations,
                          contract.dataset.data.get("license") or None, terms["digest"] if terms else None)


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
    work = staging_dir(config.root) / f"{run_folder_name(rid)}.work"
    try:
        return process_chunk(contract, manifest, chunk, store, work, plan.time_axis,
                             obligations=list(plan.obligations),
                             denied=None if decision.allow else list(decision.deny), plan_chunks=plan.chunks())
    finally:
        clean(work)


def run_files(result: ChunkResult, decision: Decision) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    """The run folder's documents beside the receipt, and the receipt's outputs for them and the partitions."""
    files = {name: json_bytes(doc) for name, doc in ((POLICY_FILE, decision.as_dict()), (QA_FILE, result.qa),
                                                     (QUARANTINE_FILE, result.quarantine)) if doc}
    roles = {POLICY_FILE: "policy_decision", QA_FILE: "qa", QUARANTINE_FILE: "quarantine"}
    outputs = [{"uri": f"kfm://artifact/{p['digest']}", "digest": p["digest"], "role": f"partition:{p['partition']}",
                "size": p["size"]} for p in result.partitions]
    outputs += [{"uri": name, "digest": sha256_digest(data), "role": roles[name]} for name, data in files.items()]
    return files, outputs


def write_chunk_run(frozen: Frozen, rid: str, chunk: Period, params: str, inputs: list[dict[str, str]],
                    outputs: list[dict[str, str]], findings: list[Finding], result: ChunkResult,
                    decision: Decision) -> tuple[str, str]:
    """A processing run's folder: its receipt (``outputs`` first, then the partitions and the run's documents), QA
    report, quarantine record and policy decision. Returns the folder and the receipt's digest."""
    files, produced = run_files(result, decision)
    receipt = build_receipt(frozen, rid, "process", params, inputs=inputs, outputs=[*outputs, *produced],
                            findings=findings, chunk=chunk, decision_id=decision.decision_id,
                            obligations_applied=result.obligations_applied,
                            transforms_applied=result.transforms_applied)
    return write_run(frozen, receipt, files)


def run_chunk(config: Config, plan: Plan, contract: Contract, chunk: Period, store: Store, frozen: Frozen,
              terms: dict[str, Any], run: ChunkRun, decision: Decision) -> None:
    """Acquire and process one chunk; one run folder with its receipt, QA report and quarantine record."""
    run.state = "running"
    rid = new_run_id(chunk.key)
    acquired = fetch_chunk(config, plan, contract, chunk, store, terms)
    run.findings.extend(acquired.findings)
    run.notes.extend(acquired.notes)
    run.acquisition = acquired.manifest
    result = ChunkResult(chunk.key)
    if not acquired.failed and acquired.manifest is not None:
        manifest = json.loads((config.root / acquired.manifest).read_text(encoding="utf-8"))
        result = process_in_staging(config, plan, contract, manifest, chunk, store, rid, decision)
        run.findings.extend(result.findings)
    params = chunk_params(plan, chunk.key, contract.spec_hash, decision.bundle_digest)
    run.run_folder, run.receipt_digest = write_chunk_run(frozen, rid, chunk, params, acquired.inputs,
                                                         acquired.outputs[:1], run.findings, result, decision)
    run.raw = sorted({i["digest"] for i in acquired.inputs if i.get("role") != "terms"})
    run.partitions = [{"partition": p["partition"], "digest": p["digest"]} for p in result.partitions]
    if result.qa:
        rows = result.qa["rows"]
        run.rows = (rows["total"], rows["accepted"], rows["quarantined"])
    run.quarantine = dict(result.quarantine.get("counts", {}))
    if any(f.severity == "error" for f in run.findings) and not result.quarantined_whole:
        run.state = "failed"
    elif result.quarantined_whole:
        run.state = "quarantined"
    elif result.empty:
        run.state = "empty"
    else:
        run.state = "done"


def window_keys(plan: Plan, contract: Contract) -> set[str]:
    """The partitions the plan's window covers."""
    from kfm_gitops.periods import get_zone

    zone = get_zone(contract.partitioning.timezone)
    return {p.key for p in periods(plan.start, plan.end, contract.partitioning.mode, zone)}


def rollup_blocked(runs: list[ChunkRun], result: BackfillResult, decision: Decision) -> bool:
    """No version when the processing policy denies the data or a chunk did not pass (no partial promotion)."""
    if not decision.allow:
        result.findings.append(Finding("ROLLUP_BLOCKED", "no version: the processing policy denies this data ("
                                       + ", ".join(decision.deny) + ")", None,
                                       hint="runs made before the policy changed are not enough; fix and run again"))
        return True
    blocked = [r for r in runs if r.state in ("quarantined", "failed")]
    if blocked:
        result.findings.append(Finding(
            "ROLLUP_BLOCKED", "no version: chunk(s) " + ", ".join(f"{r.key} ({r.state})" for r in blocked)
            + " did not pass", None, hint="fix the data or shrink the window; no partial promotion"))
        return True
    return False


def version_partitions(plan: Plan, base: VersionManifest | None, runs: list[ChunkRun], window: set[str],
                       result: BackfillResult) -> dict[str, Partition] | None:
    """The base's partitions with the window's replaced by the new ones; None (and a finding) when refused."""
    carried = {p.key: p for p in base.partitions} if base is not None else {}
    outside = carried_under_other_policy(base, plan.label, plan.obligations, window) if base is not None else []
    if base is not None and outside:
        # One label per version: partitions carried from the base were made under its label and obligations.
        result.findings.append(Finding(
            "ROLLUP_POLICY_MISMATCH", f"the base version {base.version_id} was made under label "
            f"{base.policy_label!r} and other obligations; its partitions {', '.join(outside)} cannot be "
            f"carried into a version labelled {plan.label!r}", None,
            hint="a changed label or obligations means reprocessing every partition: widen the window"))
        return None
    parts = {k: p for k, p in carried.items() if k not in window}
    new = {p["partition"]: Partition(p["partition"], p["digest"], tuple(r.raw)) for r in runs for p in r.partitions}
    parts.update(new)
    gaps = sorted(window - set(new))
    dropped = [g for g in gaps if g in carried]
    if dropped:
        result.findings.append(Finding(
            "PARTITION_DROPPED", f"partition(s) {', '.join(dropped)} of the base version {plan.prior_version} have no "
            "data in this backfill: the new version would unpublish them", None,
            hint="check the upstream for these periods, or shrink the window to leave them as they are"))
        return None
    if gaps:
        result.notes.extend(gap_notes(sorted(window), set(gaps), parse_key(gaps[0])[0]))
    if not parts:
        result.findings.append(Finding("ROLLUP_EMPTY", "the backfill produced no partition at all", None,
                                       hint="check the upstream for the window"))
        return None
    return parts


def roll_up(config: Config, plan: Plan, contract: Contract, runs: list[ChunkRun], frozen: Frozen,
            result: BackfillResult, decision: Decision, store: Store) -> None:
    """Assemble the version: the base's partitions with the window's replaced by the new ones."""
    if rollup_blocked(runs, result, decision):
        return
    base = plan.prior_version
    parts = version_partitions(plan, require_base(config, plan.slug, base) if base else None, runs,
                               window_keys(plan, contract), result)
    if parts is None:
        return
    contents = [PartitionContent(k, p.processed, p.raw) for k, p in sorted(parts.items())]
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
    committed = committed_expected_id(frozen)
    if id_differs(plan, version, committed, result):
        return
    land_version(config, plan, version, version_files(frozen, plan, contract, runs, version, parts, decision,
                                                      store), result)
    if committed == version and not result.findings and all(r.state == "reused" for r in runs):
        result.next_step = "nothing to commit: the plan and its version are committed already"


def id_differs(plan: Plan, version: str, committed: str | None, result: BackfillResult) -> bool:
    """A plan whose committed expected_dataset_version_id is a version id other than this run's result: the plan
    was rolled up before and its inputs have changed since. Stop, naming both ids."""
    if committed is None or committed == version:
        return False
    result.findings.append(Finding(
        "ROLLUP_ID_DIFFERS", f"this run gives version {version}, but the plan's committed "
        f"expected_dataset_version_id is {committed}", plan.doc.locate(("promotion", "expected_dataset_version_id")),
        hint="a plan reproduces the version it was rolled up into, and something it reads has changed since (the "
        "upstream, the contract, kfm): make a new plan for the window (`kfm plan new`); the version folders and the "
        "plan are left as they are"))
    return True


def committed_expected_id(frozen: Frozen) -> str | None:
    """The version id the plan names as committed at HEAD, when it names one (not the placeholder)."""
    from kfm_gitops import _git, _yaml
    from kfm_gitops.identity import parse_version_id

    repo = _git.discover(frozen.config.root)
    blob = _git.read_blob(repo, frozen.git_commit, Path(frozen.plan).as_posix()) if repo is not None else None
    doc = _yaml.loads(blob.decode("utf-8", "replace"), frozen.plan) if blob is not None else None
    if doc is None or isinstance(doc, list) or not isinstance(doc.data.get("promotion"), dict):
        return None
    value = doc.data["promotion"].get("expected_dataset_version_id")
    try:
        parse_version_id(str(value))
    except IdentityError:
        return None
    return str(value)


def land_version(config: Config, plan: Plan, version: str, files: dict[str, bytes], result: BackfillResult) -> None:
    """Write the version folder and the plan's expected id together; a folder that exists already must be what
    kfm would write (else nothing is written, and the finding names the file that differs)."""
    folder = version_dir(config, plan.slug, version)
    problems = compare_version(config, folder, files) if folder.exists() else []
    if problems:
        result.findings.extend(problems)
        return
    result.version = version
    result.version_folder = repo_path(config, folder)
    with interrupts_deferred():  # the version folder and the plan's id land together
        probe_writable(plan.path.parent)  # a plan kfm cannot update stops the roll-up before the version lands
        if folder.exists() and plan.expected_version == version:
            result.notes.append(f"this plan reproduces its version {version}, which it was rolled up into before")
        elif folder.exists():
            result.notes.append(f"version {version} exists already: reused")
        else:
            write_version(config, plan.slug, version, files)
        set_expected_version(plan.path, version)


def version_files(frozen: Frozen, plan: Plan, contract: Contract, runs: list[ChunkRun], version: str,
                  parts: dict[str, Partition], decision: Decision, store: Store) -> dict[str, bytes]:
    """The version folder's files: the promotion manifest, checksums, the QA summary, the runs it uses, the
    catalogs (listed by digest in the manifest) and the roll-up's receipt."""
    from kfm_gitops.materialize import MEDIA_TYPE

    slug, base = contract.slug, plan.prior_version
    head = {"dataset_slug": slug, "dataset_version_id": version}
    checksums = [{"partition": k, "path": f"processed/{slug}/{k}.parquet", "digest": p.processed,
                  "media_type": MEDIA_TYPE} for k, p in sorted(parts.items())]
    new = {p["partition"] for r in runs for p in r.partitions}
    runs_doc = runs_document(head, base, runs, sorted(set(parts) - new))
    files = {CHECKSUMS_FILE: json_bytes({"kfm_checksums_version": "v1", **head, "artifacts": checksums}),
             QA_FILE: json_bytes(qa_summary(head, runs)), RUNS_FILE: json_bytes(runs_doc)}
    manifest = {
        "kfm_promotion_manifest_version": "v1", **head, "spec_hash": contract.spec_hash,
        "base_dataset_version_id": base or None,
        "partitions": [{"partition": k, "processed": p.processed, "raw": sorted(p.raw)}
                       for k, p in sorted(parts.items())],
        "artifacts": [{"path": c["path"], "digest": c["digest"], "media_type": c["media_type"]} for c in checksums],
        "catalogs": [],
        "qa": {"status": "pass", "report_digest": sha256_digest(files[QA_FILE])},
        "policy": {"policy_label": plan.label, "decision_id": decision.decision_id,
                   "obligations": [dict(o) for o in plan.obligations]},
        "checksums_digest": sha256_digest(files[CHECKSUMS_FILE]),
        "runs_digest": sha256_digest(files[RUNS_FILE]),
        "plan": frozen.plan,
    }
    rid, created = new_run_id(max(parts)), now_utc()
    catalogs = version_catalogs(frozen, store, manifest, runs_doc, rid, created)
    manifest["catalogs"] = [{"path": rel, "digest": sha256_digest(data), "media_type": catalog_media_type(rel)}
                            for rel, data in sorted(catalogs.items())]
    files = {MANIFEST_FILE: json_bytes(manifest), **files, **catalogs}
    files[RECEIPT_FILE] = rollup_receipt(frozen, plan, runs, rid, version, files, decision, created).bytes
    return files


def version_catalogs(frozen: Frozen, store: Store, manifest: dict[str, Any], runs_doc: dict[str, Any], rid: str,
                     created: datetime) -> dict[str, bytes]:
    """The version's DCAT, STAC and PROV records, built from what the roll-up holds before it writes anything (the
    roll-up's receipt will carry the same run id and time)."""
    from kfm_gitops.catalog import Rollup, build, inputs_for, version_docs
    from kfm_gitops.receipts import actor

    config = frozen.config
    folder = repo_path(config, version_dir(config, frozen.slug, str(manifest["dataset_version_id"])))
    docs = version_docs(config.root, folder, manifest, runs_doc,
                        Rollup(rid, iso_utc(created), actor(frozen.committer), f"{folder}/{RECEIPT_FILE}"))
    if isinstance(docs, list):
        raise FindingsError(docs, "the version's catalogs cannot be made")
    return build(inputs_for(config.root, store, docs, config.vocab))


def qa_summary(head: dict[str, str], runs: list[ChunkRun]) -> dict[str, Any]:
    """The version's QA summary: each chunk's state and rows, and the run that made them."""
    return {"kfm_qa_summary_version": "v1", **head, "status": "pass", "chunks": [
        {"chunk": r.key, "state": r.state, "run": r.run_folder,
         "rows": {"total": r.rows[0], "accepted": r.rows[1], "quarantined": r.rows[2]}} for r in runs]}


def runs_document(head: dict[str, str], base: str, runs: list[ChunkRun], carried: list[str]) -> dict[str, Any]:
    """runs.json: the chunk runs a version uses (receipts by digest) and the partitions it carries from its base."""
    return {"kfm_runs_version": "v1", **head, "base_dataset_version_id": base or None, "carried": carried,
            "runs": [{"chunk": r.key, "run_id": run_id_of(r.run_folder or ""),
                      "receipt": f"{r.run_folder}/{RECEIPT_FILE}", "digest": r.receipt_digest}
                     for r in runs if r.run_folder]}


def rollup_receipt(frozen: Frozen, plan: Plan, runs: list[ChunkRun], rid: str, version: str,
                   files: dict[str, bytes], decision: Decision, created: datetime) -> Receipt:
    """The roll-up's receipt: the chunk runs' receipts in, the version's files out."""
    return build_receipt(
        frozen, rid, "rollup", params_digest("rollup", plan=plan_params(plan)),
        inputs=[{"uri": f"{r.run_folder}/{RECEIPT_FILE}", "digest": r.receipt_digest or ""} for r in runs
                if r.run_folder and r.receipt_digest],
        outputs=[{"uri": name, "digest": sha256_digest(data)} for name, data in files.items()],
        dataset_version_id=version, decision_id=decision.decision_id, created_at=created)


def chunk_failed(run: ChunkRun, exc: Exception) -> None:
    """A chunk that stopped: a CHUNK_FAILED finding saying why, as far as it is safe to say."""
    if isinstance(exc, KfmError):
        run.findings.append(Finding("CHUNK_FAILED", exc.message, None, hint=exc.hint))
    else:
        if os.environ.get("KFM_DEBUG") == "1":
            import traceback

            traceback.print_exc()
        # An OSError says what the machine refused and where; other exceptions may quote data, so only their type
        # is said.
        what = (f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.strerror and exc.filename
                else type(exc).__name__)
        run.findings.append(Finding("CHUNK_FAILED", f"chunk {run.key}: {what} while processing", None,
                                    hint="re-run with --debug for the traceback"))
    run.state = "failed"


def check_inputs(config: Config, plan: Plan) -> None:
    """Refuse a run from uncommitted inputs, or on altered evidence, before anything is said or written (the same
    check a run makes under the repository lock)."""
    freeze(config, plan)


def run_backfill(config: Config, plan: Plan, store: Store, *, keys: list[str] | None = None, jobs: int | None = None,
                 force: bool = False, rollup_only: bool = False,
                 on_change: Callable[[ChunkRun], None] | None = None) -> BackfillResult:
    started = time.monotonic()
    contract = require_contract(config.root, plan.slug, config.vocab)
    chunks = plan.chunks()
    selected = [] if rollup_only else select_chunks(plan, keys)
    runs = {c.key: ChunkRun(c.key) for c in chunks}
    notify = on_change or (lambda r: None)
    with RepoLock(config.root):
        frozen = freeze(config, plan)
        terms = plan_terms(config, plan, store)
        decision = decide_processing(config, plan, contract, terms)
        params = {c.key: chunk_params(plan, c.key, contract.spec_hash, decision.bundle_digest) for c in chunks}
        result = BackfillResult([runs[c.key] for c in chunks])
        todo = reuse_runs(config, plan, chunks, selected, runs, params, store, result, force=force, notify=notify)

        def one(c: Period) -> None:
            run = runs[c.key]
            run.state = "running"
            notify(run)
            try:
                run_chunk(config, plan, contract, c, store, frozen, terms, run, decision)
            except Exception as exc:  # one chunk's failure is a finding; the other chunks go on
                chunk_failed(run, exc)
            notify(run)

        workers = max(1, min(jobs or plan.max_parallelism, plan.max_parallelism, len(todo) or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, todo))
        result.notes.extend(n for r in result.chunks for n in r.notes)
        if not rollup_incomplete(result, complain=rollup_only or not keys):
            roll_up(config, plan, contract, result.chunks, frozen, result, decision, store)
            upstream_changed(config, plan, result)
    result.elapsed = time.monotonic() - started
    return result


def rollup_incomplete(result: BackfillResult, complain: bool) -> bool:
    """Chunks with no passing run yet: no roll-up (a finding when the whole plan was asked for, else a note)."""
    missing = [r.key for r in result.chunks if r.state == "pending"]
    if missing:
        message = (f"not rolled up: chunk(s) {', '.join(missing)} have no passing run yet (run them, here or on "
                   "other machines sharing the store, then `kfm backfill rollup`)")
        if complain:
            result.findings.append(Finding("ROLLUP_INCOMPLETE", message, None))
        else:
            result.notes.append(message)
    return bool(missing)


def _artifacts(receipt: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in receipt.get("outputs", []) if str(o.get("role", "")).startswith("partition:")]


def reuse_runs(config: Config, plan: Plan, chunks: list[Period], selected: list[Period], runs: dict[str, ChunkRun],
               params: dict[str, str], store: Store, result: BackfillResult, *, force: bool,
               notify: Callable[[ChunkRun], None]) -> list[Period]:
    """Reuse each chunk's passing run for the same parameters once its artifacts check out against the store
    (digests and sizes, streamed, in parallel); return the selected chunks that must run. A reused run whose
    artifact is corrupt runs again when selected (a note says so), else it is a finding naming the object."""
    found = {c.key: hit for c in chunks if not (force and c in selected)
             and (hit := reusable(config, plan.slug, c.key, params[c.key], store)) is not None}
    verdicts = store.verify_all({o["digest"]: o.get("size") for _, receipt in found.values()
                                 for o in _artifacts(receipt)})
    todo = []
    for c in chunks:
        if c.key not in found:
            todo += [c] if c in selected else []
            continue
        folder, receipt = found[c.key]
        bad = [(o, verdicts[o["digest"]]) for o in _artifacts(receipt) if verdicts[o["digest"]]]
        if not bad:
            _from_receipt(runs[c.key], folder, receipt, config.root)
            runs[c.key].state = "reused"
            notify(runs[c.key])
        else:
            output, code = bad[0]
            what = (f"its artifact {output['digest']} ({output['role']}) is "
                    f"{'missing from' if code == 'OBJECT_MISSING' else 'corrupt in'} the store {store.url} ({code})")
            if c not in selected:
                result.findings.append(Finding(
                    "REUSE_CORRUPT", f"chunk {c.key} cannot be reused: {what}", Location(display_path(folder)),
                    hint=f"`kfm backfill run {display_path(plan.path)} --chunk {c.key} --force` makes it again"))
                continue
            result.notes.append(f"chunk {c.key}: {what}: running the chunk again")
            todo.append(c)
    return todo


def upstream_changed(config: Config, plan: Plan, result: BackfillResult) -> None:
    """Reused chunks made from acquisitions that others supersede since: say what changed upstream, and what to do
    (a new plan for the window, when this plan reproduces the version it was rolled up into)."""
    replaced = superseded_by(config.root, plan.slug)
    stale = [(r, Path(r.acquisition).stem) for r in result.chunks
             if r.state == "reused" and r.acquisition and Path(r.acquisition).stem in replaced]
    for r, old in stale:
        head = replaced[old]
        before, problem = read_json(config.root / str(r.acquisition), "MANIFEST_INVALID", "")
        what = changes(before, head) if problem is None and isinstance(before, dict) else "its objects differ"
        result.notes.append(f"the upstream has changed since: chunk {r.key} was made from acquisition {old}, which "
                            f"{head['acquisition_id']} supersedes (the acquisition digests differ: {what})")
    if not stale or result.version is None:
        return
    if result.version == plan.expected_version:
        windows = [replaced[old]["chunk"] for _, old in stale]
        window = f"{min(w['start'] for w in windows)}/{max(w['end'] for w in windows)}"
        result.next_step = (f"to publish what changed, make a new plan for the window: `kfm plan new {plan.slug} "
                            f"--window {window} --chunking {plan.mode} --reason \"Upstream changed since "
                            f"{result.version}\"` (this plan stays what it was)")
    else:
        keys = " ".join(f"--chunk {r.key}" for r, _ in stale)
        result.next_step = (f"run those chunks again on what upstream delivers now: `kfm backfill run "
                            f"{display_path(plan.path)} {keys} --force`")


def dry_run(config: Config, plan: Plan, store: Store) -> list[dict[str, Any]]:
    """What a run would do, chunk by chunk; writes nothing."""
    from kfm_gitops.connectors import Window, expand
    from kfm_gitops.periods import get_zone

    contract = require_contract(config.root, plan.slug, config.vocab)
    part = contract.partitioning
    zone = get_zone(part.timezone)
    params = contract.pipeline.data["connector"]["params"]
    template = params.get("url") or f"{params.get('root', '')}/{params.get('pattern', '')}"
    replaced = superseded_by(config.root, plan.slug)
    out = []
    for c in plan.chunks():
        found = reusable(config, contract.slug, c.key,
                         chunk_params(plan, c.key, contract.spec_hash, load_bundle(config.root).digest), store)
        made_from = Path(acquisition_of(found[1]) or "").stem if found else None
        out.append({
            "chunk": c.key, "start": iso_utc(c.start), "end": iso_utc(c.end),
            "sources": expand(template, Window(c.key, c.start, c.end, zone)),
            "partitions": [p.key for p in periods(c.start, c.end, part.mode, zone)],
            "reuse": found[0].relative_to(config.root).as_posix() if found else None,
            "upstream_changed": replaced[made_from]["acquisition_id"] if made_from in replaced else None,
        })
    return out


def process_acquired(config: Config, plan: Plan, key: str, store: Store) -> tuple[ChunkResult, str]:
    """`kfm process`: one chunk from its current acquisition to a run folder, under the same policy decision and
    obligations as a backfill run. Returns the result and the run folder."""
    from kfm_gitops.acquire import current_acquisition

    contract = require_contract(config.root, plan.slug, config.vocab)
    chunk = select_chunks(plan, [key])[0]
    with RepoLock(config.root):
        frozen = freeze(config, plan)
        mpath, manifest = current_acquisition(config.root, plan.slug, key)
        decision = decide_processing(config, plan, contract, manifest.get("terms"))
        rid = new_run_id(key)
        result = process_in_staging(config, plan, contract, manifest, chunk, store, rid, decision)
        acquisition = {"uri": repo_path(config, mpath), "digest": sha256_digest(mpath.read_bytes()),
                       "role": "acquisition"}
        params = params_digest("process", chunk=key, acquisition=manifest["acquisition_id"],
                               spec_hash=contract.spec_hash, policies=decision.bundle_digest)
        folder, _ = write_chunk_run(frozen, rid, chunk, params, [acquisition, *result.inputs], [], result.findings,
                                    result, decision)
    return result, folder


MAX_MATRIX_JOBS = 256  # a GitHub Actions matrix holds at most 256 jobs per workflow run


def matrix(keys: list[str], shards: int) -> dict[str, Any]:
    """Chunk keys dealt into balanced shards for a CI matrix (consecutive chunks together; sizes differ by one at
    most; never more than 256 shards, nor more shards than chunks): {"include": [{"shard": "1/N", "chunks": "KEY
    KEY ..."}]}."""
    n = max(1, min(shards, MAX_MATRIX_JOBS, len(keys)))
    size, extra = divmod(len(keys), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append({"shard": f"{i + 1}/{n}", "chunks": " ".join(keys[start:end])})
        start = end
    return {"include": out}


__all__ = ["BackfillResult", "ChunkRun", "dry_run", "matrix", "run_backfill"]


def catalog_media_type(rel: str) -> str:
    return "application/ld+json" if rel.endswith(".jsonld") else "application/json"
