"""The `kfm` command line: parse, call the library, render, and map every outcome to an exit code in one place."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from kfm_gitops import __version__
from kfm_gitops.errors import (
    EXIT_FINDINGS,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    FindingsError,
    KfmError,
)

if TYPE_CHECKING:
    from kfm_gitops.config import Config
    from kfm_gitops.findings import Finding, Report

FORMATS = click.Choice(["text", "json", "github"])
format_option = click.option("--format", "fmt", type=FORMATS, default="text", show_default=True,
                             help="text for people, json for machines, github for workflow annotations")


def _echo_report(report: Report, fmt: str, what: str) -> int:
    from kfm_gitops.findings import render

    click.echo(render(report, fmt, what=what))
    return EXIT_OK if report.ok else EXIT_FINDINGS


def _config_for(start: Path, cache: dict[Path, Config | list[Finding]]
                ) -> tuple[Path | None, Config | list[Finding] | None]:
    from kfm_gitops.config import find_root, load_config

    root = find_root(start)
    if root is None:
        return None, None
    if root not in cache:
        cache[root] = load_config(root)
    return root, cache[root]


def _require_config(start: Path | None = None, standalone_hint: bool = False) -> Config:
    from kfm_gitops.config import CONFIG_NAME, find_root, load_config

    here = start or Path.cwd()
    root = find_root(here)
    if root is None:
        hint = "run this inside a governed repository, or make one with `kfm init`"
        raise KfmError(f"no {CONFIG_NAME} in {here} or any folder above it",
                       hint=hint + (", or pass --standalone" if standalone_hint else ""))
    cfg = load_config(root)
    if isinstance(cfg, list):
        raise FindingsError(cfg, f"{CONFIG_NAME} is invalid")
    return cfg


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="kfm")
@click.option("--debug", is_flag=True, help="show a traceback when something goes wrong")
def cli(debug: bool) -> None:
    """kfm: Git-native, fail-closed backfills. Plans in, governed releases out."""


# --- plans --------------------------------------------------------------------------------------------------------


@cli.group()
def plan() -> None:
    """Write, validate and inspect backfill plans."""


@plan.command("validate")
@click.argument("files", nargs=-1)
@format_option
@click.option("--standalone", is_flag=True, help="check the files alone, without a governed repository")
def plan_validate(files: tuple[str, ...], fmt: str, standalone: bool) -> int:
    """Check plan FILEs (all plans of the repository when none is given); every error of every file."""
    from kfm_gitops._fs import display_path
    from kfm_gitops.config import no_root_finding
    from kfm_gitops.findings import Finding, Location, Report, sort_findings
    from kfm_gitops.plan import check_plan

    report = Report()
    paths = [Path(f) for f in files]
    if not paths:
        cfg = _require_config()
        paths = sorted(p for p in cfg.plans_dir().glob("*/*.y*ml") if p.suffix in (".yml", ".yaml"))
    cache: dict[Path, Config | list[Finding]] = {}
    for path in paths:
        shown = display_path(path)
        report.checked.append(shown)
        config: Config | None = None
        if not standalone:
            root, loaded = _config_for(path.parent if not path.is_dir() else path, cache)
            if root is None:
                report.findings.append(no_root_finding(shown))
            elif isinstance(loaded, list):
                report.findings.append(Finding("CONFIG_INVALID", "kfm.yaml of this repository is invalid",
                                               Location(display_path(root / "kfm.yaml")),
                                               hint="run `kfm dataset validate` or fix kfm.yaml"))
                report.findings.extend(f for f in loaded if f not in report.findings)
            else:
                config = loaded
        _, findings = check_plan(path, config=config, shown=shown)
        report.extend(sort_findings(findings))
    return _echo_report(report, fmt, "plan")


@plan.command("chunks")
@click.argument("file")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people, json for scripts")
@click.option("--standalone", is_flag=True, help="check the plan alone, without a governed repository")
def plan_chunks(file: str, fmt: str, standalone: bool) -> int:
    """List the chunks of a plan as half-open UTC intervals with their keys."""
    from kfm_gitops._fs import display_path
    from kfm_gitops.plan import load_plan

    path = Path(file)
    config = None if standalone else _require_config(path.parent, standalone_hint=True)
    try:
        p = load_plan(path, config)
    except FindingsError as exc:
        if fmt != "json":
            raise
        click.echo(json.dumps({"ok": False, "plan": display_path(path),
                               "findings": [f.as_dict() for f in exc.findings]}, indent=2))
        return EXIT_FINDINGS
    chunks = p.chunks()
    if fmt == "json":
        doc = {"plan": display_path(path), "dataset_slug": p.slug, "mode": p.mode, "timezone": p.timezone,
               "chunks": [c.as_dict() for c in chunks]}
        click.echo(json.dumps(doc, indent=2))
        return EXIT_OK
    click.echo(f"{display_path(path)}: {len(chunks)} {p.mode} chunk{'s' if len(chunks) != 1 else ''} "
               f"of {p.slug} in {p.timezone}")
    for c in chunks:
        d = c.as_dict()
        click.echo(f"  {c.key:<12} [{d['start']}, {d['end']})")
    return EXIT_OK


@plan.command("new")
@click.argument("slug")
@click.option("--window", required=True, help="START/END, e.g. 2023-01-01T00:00:00Z/2023-04-01T00:00:00Z")
@click.option("--chunking", "mode", required=True,
              type=click.Choice(["daily", "weekly", "monthly", "quarterly", "yearly"]))
@click.option("--reason", required=True, help="why this backfill is needed")
@click.option("--time-axis", default=None, help="default: the axis the dataset is partitioned on")
@click.option("--requested-by", default=None, help="default: git user.email, else $USER")
@click.option("--reviewer", "reviewers", multiple=True, help="a reviewer (steward); repeat for several")
@click.option("--max-parallelism", type=click.IntRange(1, 64), default=None,
              help="chunks run at once (default: 2, or 1 for a one-chunk plan)")
@click.option("--prior", default=None, help='the base version (default: the one release publishes; while nothing '
              'is published, the newest version under releases/<slug>/; "" for a first release)')
@click.option("--terms", default=None, help="upstream licence/terms snapshot source (URI or repository path)")
def plan_new(slug: str, window: str, mode: str, reason: str, time_axis: str | None, requested_by: str | None,
             reviewers: tuple[str, ...], max_parallelism: int | None, prior: str | None, terms: str | None) -> int:
    """Write plans/SLUG/backfill-YYYYMMDD-<hex6>.yml from the commented template."""
    from kfm_gitops._fs import display_path
    from kfm_gitops.dataset import require_contract
    from kfm_gitops.findings import Report, sort_findings
    from kfm_gitops.identity import IdentityError, check_slug
    from kfm_gitops.plan import check_plan, new_plan_path, parse_window, render_template, write_new_plan
    from kfm_gitops.versions import default_base, inherited_policy

    try:
        check_slug(slug)
    except IdentityError as exc:
        raise KfmError(str(exc)) from exc
    cfg = _require_config()
    start, end = parse_window(window)
    contract = require_contract(cfg.root, slug, cfg.vocab)
    part = contract.partitioning
    if max_parallelism is None:
        from kfm_gitops.periods import Mode, get_zone, periods

        n = len(periods(start, end, cast("Mode", mode), get_zone(part["timezone"]), limit=2))
        max_parallelism = min(2, max(1, n))
    path = new_plan_path(cfg, slug)
    base, note = (prior, "") if prior is not None else default_base(cfg, slug)
    label, obligations, inherited = inherited_policy(cfg, slug, base, contract.label, contract.obligations)
    if inherited:
        note = (note + "; " if note else "") + (f"label {label!r} and obligations are the base version's, which "
                                                "differ from the contract's")
    text = render_template(
        slug=slug, path=os.path.relpath(path, cfg.root), reason=reason,
        requested_by=requested_by or _default_principal(cfg.root), reviewers=list(reviewers),
        time_axis=time_axis or part["axis"], start=start, end=end, mode=mode, parallelism=max_parallelism,
        timezone=part["timezone"], terms=terms or _default_terms(contract.pipeline.data),
        label=label, obligations=obligations,
        prior=base,
    )
    write_new_plan(path, text)
    click.echo(f"wrote {display_path(path)}")
    if note:
        click.echo(f"note: {note}")
    _, findings = check_plan(path, config=cfg)
    if findings:
        report = Report([display_path(path)], sort_findings(findings))
        click.echo("to do before review:")
        for f in report.findings:
            click.echo(f"  {f.text()}")
    shown = display_path(path)
    click.echo(f"next: edit it, then `kfm plan validate {shown}` and `kfm plan chunks {shown}`")
    return EXIT_OK


def _default_principal(root: Path) -> str:
    from kfm_gitops import _git

    repo = _git.discover(root)
    if repo is not None:
        sig = _git.signature(repo)
        if sig.email and sig.email != _git.FALLBACK_EMAIL:
            return str(sig.email)
    return os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"


def _default_terms(pipeline: dict[str, Any]) -> str:
    params = pipeline.get("connector", {}).get("params", {})
    terms = params.get("terms")
    return str(terms) if terms else "TODO: the upstream licence or terms (URI or path)"


# --- datasets -----------------------------------------------------------------------------------------------------


@cli.group()
def dataset() -> None:
    """Validate dataset contracts and compute their spec_hash."""


@dataset.command("validate")
@click.argument("targets", nargs=-1)
@format_option
def dataset_validate(targets: tuple[str, ...], fmt: str) -> int:
    """Check dataset contracts: SLUGs, dataset folders (or datasets/ itself) or contract files (all datasets when none
    is given)."""
    from kfm_gitops.config import find_root, load_config
    from kfm_gitops.dataset import validate_paths
    from kfm_gitops.findings import Report, sort_findings

    start = Path(targets[0]).parent if targets and Path(targets[0]).exists() else Path.cwd()
    root = find_root(start)
    config = None
    report = Report()
    if root is not None:
        loaded = load_config(root)
        if isinstance(loaded, list):
            report.extend(loaded)
        else:
            config = loaded
    elif not targets:
        raise KfmError("no kfm.yaml here or above, and no contract named",
                       hint="name contract files, or run inside a governed repository")
    from kfm_gitops.connectors import check_params

    checked, findings = validate_paths(config, list(targets), check_params)
    report.checked.extend(checked)
    report.extend(sort_findings(findings))
    return _echo_report(report, fmt, "contract file")


@dataset.command("hash")
@click.argument("slug")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people, json for scripts")
def dataset_hash(slug: str, fmt: str) -> int:
    """Print the dataset's spec_hash (sha256 of the canonical JSON of its dataset.yaml and pipeline.yaml)."""
    from kfm_gitops.dataset import require_contract

    cfg = _require_config()
    contract = require_contract(cfg.root, slug, cfg.vocab)
    if fmt == "json":
        click.echo(json.dumps({"dataset_slug": slug, "spec_hash": contract.spec_hash}, indent=2))
    else:
        click.echo(contract.spec_hash)
    return EXIT_OK


# --- RAW ------------------------------------------------------------------------------------------------------

store_option = click.option("--store", "store_url", default=None, metavar="URL",
                            help="object store (default: KFM_STORE, else kfm.yaml's store)")


def _store(cfg: Config, override: str | None) -> Any:
    from kfm_gitops.config import store_url
    from kfm_gitops.store import Store

    return Store(store_url(cfg, override))


@cli.command("acquire")
@click.argument("plan_file", metavar="PLAN")
@click.option("--chunk", "chunks", multiple=True, metavar="KEY", help="only this chunk; repeat for several")
@store_option
@format_option
def acquire_cmd(plan_file: str, chunks: tuple[str, ...], store_url: str | None, fmt: str) -> int:
    """Acquire the plan's chunks into RAW: payloads and terms into the store, a manifest and a receipt each."""
    from kfm_gitops._fs import display_path
    from kfm_gitops.acquire import acquire
    from kfm_gitops.findings import Report, render
    from kfm_gitops.plan import load_plan

    path = Path(plan_file)
    cfg = _require_config(path.parent)
    p = load_plan(path, cfg)
    store = _store(cfg, store_url)
    outcomes = acquire(cfg, p, store, list(chunks) or None)
    report = Report([o.key for o in outcomes], [f for o in outcomes for f in o.findings])
    if fmt == "json":
        click.echo(json.dumps({"ok": report.ok, "plan": display_path(path), "store": store.url, "chunks": [
            {"key": o.key, "acquisition_id": o.acquisition_id, "manifest": o.manifest, "reused": o.reused,
             "objects": o.objects, "bytes": o.bytes, "run": o.run_folder, "receipt_digest": o.receipt_digest,
             "findings": [f.as_dict() for f in o.findings]} for o in outcomes]}, indent=2))
        return EXIT_OK if report.ok else EXIT_FINDINGS
    if fmt == "text":
        click.echo(f"acquiring {len(outcomes)} chunk(s) of {p.slug} into {store.url}")
        for o in outcomes:
            state = "FAILED" if o.failed else ("reused" if o.reused else ("empty" if o.objects == 0 else "new"))
            detail = f"{o.objects} object(s), {o.bytes:,} bytes -> {o.manifest}" if o.manifest else "no manifest"
            click.echo(f"  {o.key:<12} {state:<7} {detail}")
            click.echo(f"  {'':<12} receipt {o.run_folder}/receipt.json")
    click.echo(render(report, fmt, what="chunk").replace("chunks valid", "chunks acquired")
               .replace("chunk valid", "chunk acquired"))
    return EXIT_OK if report.ok else EXIT_FINDINGS


@cli.command("process")
@click.argument("plan_file", metavar="PLAN")
@click.option("--chunk", "key", required=True, metavar="KEY", help="the chunk to process")
@store_option
def process_cmd(plan_file: str, key: str, store_url: str | None) -> int:
    """Run one chunk acquired by `kfm acquire` through WORK to PROCESSED and write its run folder (no roll-up)."""
    from kfm_gitops.backfill import process_acquired
    from kfm_gitops.plan import load_plan

    path = Path(plan_file)
    cfg = _require_config(path.parent)
    result, folder = process_acquired(cfg, load_plan(path, cfg), key, _store(cfg, store_url))
    rows = result.qa.get("rows", {"total": 0, "accepted": 0, "quarantined": 0})
    click.echo(f"chunk {key}: {rows['total']} rows, {rows['accepted']} accepted, {rows['quarantined']} quarantined")
    for code, count in result.quarantine.get("counts", {}).items():
        click.echo(f"  quarantined {count} x {code}")
    if result.quarantined_whole:
        reasons = result.qa.get("threshold_failures") or result.quarantine.get("reasons") or []
        click.echo(f"chunk {key} quarantined whole: " + "; ".join(reasons))
    for f in result.findings:
        click.echo(f"  {f.text()}")
    for p in result.partitions:
        click.echo(f"  partition {p['partition']}: {p['rows']} rows -> {p['digest']}")
    click.echo(f"run folder {folder}")
    failed = result.quarantined_whole or any(f.severity == "error" for f in result.findings)
    return EXIT_FINDINGS if failed else EXIT_OK


@cli.group()
def backfill() -> None:
    """Run a backfill plan: chunks in parallel, resumable, rolled up into a dataset version."""


def _print_dry_run(items: list[dict[str, Any]]) -> None:
    click.echo(f"dry run: {len(items)} chunk(s); nothing is written")
    for item in items:
        reuse = f"reuse {item['reuse']}" if item["reuse"] else "run"
        click.echo(f"  {item['chunk']:<12} [{item['start']}, {item['end']})  partitions {', '.join(item['partitions'])}"
                   f"  -> {reuse}")
        for src in item["sources"][:3]:
            click.echo(f"  {'':<12} source {src}")
        if len(item["sources"]) > 3:
            click.echo(f"  {'':<12} ... and {len(item['sources']) - 3} more source pattern(s)")


def _report_backfill(result: Any, fmt: str) -> int:
    from kfm_gitops.findings import Report, render

    findings = [f for c in result.chunks for f in c.findings] + result.findings
    report = Report([c.key for c in result.chunks], findings)
    if fmt == "json":
        click.echo(json.dumps({"ok": result.ok, "version": result.version, "version_folder": result.version_folder,
                               "notes": result.notes, "chunks": [
                                   {"chunk": c.key, "state": c.state, "run": c.run_folder,
                                    "partitions": c.partitions, "rows": list(c.rows)} for c in result.chunks],
                               "findings": [f.as_dict() for f in findings]}, indent=2))
        return EXIT_OK if result.ok else EXIT_FINDINGS
    for note in result.notes:
        click.echo(f"note: {note}")
    if findings:
        click.echo(render(Report([c.key for c in result.chunks], findings), fmt, what="chunk").rsplit("\n", 1)[0])
    if result.version_folder:
        click.echo(f"version {result.version}: {result.version_folder}/ (the plan's expected_dataset_version_id is "
                   "set)")
        click.echo("next: commit the plan and its evidence (data/raw/, releases/) in the plan PR")
    elif result.version:
        click.echo(f"version {result.version} (unchanged)")
    return EXIT_OK if result.ok and report.ok else EXIT_FINDINGS


class _LiveTable:
    """A live table of the chunks on a terminal (rich); the same states as the plain lines elsewhere."""

    def __init__(self, keys: list[str]) -> None:
        import threading

        from rich.console import Console
        from rich.live import Live

        self.rows: dict[str, tuple[str, str, str]] = {k: ("pending", "", "") for k in keys}
        self.lock = threading.Lock()
        self.live = Live(self._table(), console=Console(), refresh_per_second=8, transient=False)

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(show_header=True, header_style="bold", box=None)
        for name in ("chunk", "state", "rows", "run folder"):
            table.add_column(name)
        colours = {"done": "green", "reused": "cyan", "running": "yellow", "empty": "blue",
                   "quarantined": "red", "failed": "red"}
        for key, (state, rows, where) in self.rows.items():
            table.add_row(key, f"[{colours.get(state, 'white')}]{state}[/]", rows, where)
        return table

    def __call__(self, run: Any) -> None:
        with self.lock:
            total, accepted, quarantined = run.rows
            rows = f"{accepted}/{total}, {quarantined} quarantined" if total else ""
            self.rows[run.key] = (run.state, rows, run.run_folder or "")
            self.live.update(self._table())

    def __enter__(self) -> _LiveTable:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)


def _progress() -> Any:
    import threading

    lock = threading.Lock()

    def show(run: Any) -> None:
        with lock:
            total, accepted, quarantined = run.rows
            detail = f" ({accepted}/{total} rows, {quarantined} quarantined)" if total else ""
            where = f" -> {run.run_folder}" if run.run_folder else ""
            click.echo(f"  {run.key:<12} {run.state}{detail}{where}")

    return show


@backfill.command("run")
@click.argument("plan_file", metavar="PLAN")
@click.option("--dry-run", is_flag=True, help="list chunks, sources, partitions and reuse; write nothing")
@click.option("--yes", is_flag=True, help="skip the confirmation that dry_run_first asks for")
@click.option("--chunk", "chunks", multiple=True, metavar="KEY",
              help="only this chunk (repeat); the roll-up waits until every chunk has run")
@click.option("--jobs", type=click.IntRange(1, 64), default=None, help="chunks at once (at most max_parallelism)")
@click.option("--force", is_flag=True, help="run chunks again even when a passing run can be reused")
@store_option
@format_option
def backfill_run(plan_file: str, dry_run: bool, yes: bool, chunks: tuple[str, ...], jobs: int | None, force: bool,
                 store_url: str | None, fmt: str) -> int:
    """Run the plan's chunks (acquire, normalise, QA, materialise, receipt) and roll up a version.

    The plan, its dataset's contract, kfm.yaml and policies/ must be committed (a run refuses inputs that differ
    from HEAD), and so must earlier evidence. The roll-up writes the version under releases/<slug>/ and its id into
    the plan's expected_dataset_version_id; commit both with the run folders and data/raw/ in the plan's PR."""
    from kfm_gitops import backfill as bf
    from kfm_gitops._fs import display_path
    from kfm_gitops.plan import load_plan, select_chunks

    path = Path(plan_file)
    cfg = _require_config(path.parent)
    p = load_plan(path, cfg)
    selected = select_chunks(p, list(chunks)) if chunks else p.chunks()  # an unknown key stops here
    store = _store(cfg, store_url)
    if dry_run and fmt == "json":
        click.echo(json.dumps({"plan": display_path(path), "chunks": bf.dry_run(cfg, p, store)}, indent=2))
        return EXIT_OK
    if dry_run or (p.dry_run_first and not yes):
        _print_dry_run(bf.dry_run(cfg, p, store))
        if dry_run:
            return EXIT_OK
        if not sys.stdin.isatty() or not click.confirm("run it?", default=False):
            click.echo("not run: the plan asks for a dry run first; pass --yes to run", err=True)
            return EXIT_FINDINGS
    if fmt == "text":
        at_once = min(jobs or p.max_parallelism, p.max_parallelism)
        which = (f"{len(p.chunks())} chunk(s)" if not chunks else
                 f"chunk(s) {', '.join(c.key for c in selected)} of {len(p.chunks())}")
        click.echo(f"backfill {p.slug}: {which}, up to {at_once} at once, store {store.url}")
    if fmt == "text" and sys.stdout.isatty() and not os.environ.get("CI"):
        with _LiveTable([c.key for c in p.chunks()]) as live:
            result = bf.run_backfill(cfg, p, store, keys=list(chunks) or None, jobs=jobs, force=force, on_change=live)
    else:
        result = bf.run_backfill(cfg, p, store, keys=list(chunks) or None, jobs=jobs, force=force,
                                 on_change=_progress() if fmt == "text" else None)
    return _report_backfill(result, fmt)


@backfill.command("rollup")
@click.argument("plan_file", metavar="PLAN")
@store_option
@format_option
def backfill_rollup(plan_file: str, store_url: str | None, fmt: str) -> int:
    """Assemble the version from chunk runs made here or on other machines (sharing a store)."""
    from kfm_gitops import backfill as bf
    from kfm_gitops.plan import load_plan

    path = Path(plan_file)
    cfg = _require_config(path.parent)
    p = load_plan(path, cfg)
    result = bf.run_backfill(cfg, p, _store(cfg, store_url), rollup_only=True)
    return _report_backfill(result, fmt)


@backfill.command("matrix")
@click.argument("plan_file", metavar="PLAN")
def backfill_matrix(plan_file: str) -> int:
    """Print the chunk matrix as JSON for a CI job matrix: {"include": [{"chunk": ...}]}."""
    from kfm_gitops.backfill import matrix
    from kfm_gitops.plan import load_plan

    path = Path(plan_file)
    p = load_plan(path, _require_config(path.parent))
    click.echo(json.dumps(matrix(p)))
    return EXIT_OK


@cli.group()
def policy() -> None:
    """Policy as code: the Rego policies under policies/ and their tests."""


@policy.command("test")
@format_option
def policy_test(fmt: str) -> int:
    """Run the policies' test cases (policies/tests/*.cases.json), each on a fresh engine, in a subprocess."""
    from kfm_gitops.findings import Report, render
    from kfm_gitops.policy import test_policies

    cfg = _require_config()
    checked, findings = test_policies(cfg.root)
    click.echo(render(Report(checked, findings), fmt, what="policy case").replace("cases valid", "cases pass")
               .replace("case valid", "case passes"))
    return EXIT_OK if Report(checked, findings).ok else EXIT_FINDINGS


@cli.group()
def raw() -> None:
    """Check the RAW zone."""


@raw.command("verify")
@click.argument("slugs", nargs=-1)
@click.option("--jobs", type=click.IntRange(1, 256), default=None, help="hashing threads (default: all cores)")
@store_option
@format_option
def raw_verify(slugs: tuple[str, ...], jobs: int | None, store_url: str | None, fmt: str) -> int:
    """Re-hash every object the acquisition manifests name; name each missing or corrupt one."""
    from kfm_gitops.acquire import verify_raw
    from kfm_gitops.dataset import list_slugs
    from kfm_gitops.findings import Report, render

    cfg = _require_config()
    known = list_slugs(cfg.root)
    unknown = [s for s in slugs if s not in known]
    if unknown:
        raise KfmError(f"no dataset {', '.join(unknown)} in {cfg.root}/datasets",
                       hint=f"datasets here: {', '.join(known) or 'none'}")
    store = _store(cfg, store_url)
    checked, findings, n, missing = verify_raw(cfg, store, list(slugs) or known, jobs)
    report = Report(checked, findings)
    text = render(report, fmt, what="acquisition manifest")
    if fmt != "json":
        text += (f" ({n} object(s) named: {n - missing} re-hashed, {missing} missing from {store.url})" if missing
                 else f" ({n} object(s) re-hashed in {store.url})")
    click.echo(text)
    return EXIT_OK if report.ok else EXIT_FINDINGS


@cli.group("store")
def store_group() -> None:
    """Move a dataset's objects between object stores."""


def _move(direction: str, slugs: tuple[str, ...], other: str, store_url: str | None) -> int:
    from kfm_gitops.acquire import dataset_digests, version_digests
    from kfm_gitops.dataset import list_slugs
    from kfm_gitops.store import Store
    from kfm_gitops.versions import MANIFEST_FILE, is_version_dir

    cfg = _require_config()
    here = _store(cfg, store_url)
    there = Store(other)
    known = list_slugs(cfg.root)
    digests: set[str] = set()
    for arg in slugs or tuple(known):
        folder = Path(arg)
        if is_version_dir(folder):
            digests.update(version_digests(folder))
        elif "/" in arg or folder.is_dir() or arg not in known:
            raise KfmError(f"{arg} is neither a dataset slug nor a version folder",
                           hint=f"datasets here: {', '.join(known) or 'none'}; a version folder holds "
                           f"{MANIFEST_FILE}")
        else:
            digests.update(dataset_digests(cfg, arg))
    source, target = (here, there) if direction == "push" else (there, here)
    if digests and not source.reachable():
        raise KfmError(f"there is no store at {source.url}",
                       hint="check the URL or path; a local store is a folder that holds sha256/")
    copied, present = source.copy_to(target, sorted(digests))
    click.echo(f"{direction}: {copied} object(s) copied, {present} already there ({source.url} -> {target.url})")
    return EXIT_OK


@store_group.command("push")
@click.argument("slugs", nargs=-1, metavar="[SLUG|VERSION_DIR]...")
@click.option("--to", "to_url", required=True, metavar="URL", help="the store to copy into")
@click.option("--store", "store_url", default=None, metavar="URL",
              help="the store to copy from (default: KFM_STORE, else kfm.yaml's store)")
def store_push(slugs: tuple[str, ...], to_url: str, store_url: str | None) -> int:
    """Copy the objects that SLUGs' acquisitions and runs (or a version folder) name into another store."""
    return _move("push", slugs, to_url, store_url)


@store_group.command("pull")
@click.argument("slugs", nargs=-1, metavar="[SLUG|VERSION_DIR]...")
@click.option("--from", "from_url", required=True, metavar="URL", help="the store to copy from")
@click.option("--store", "store_url", default=None, metavar="URL",
              help="the store to copy into (default: KFM_STORE, else kfm.yaml's store)")
def store_pull(slugs: tuple[str, ...], from_url: str, store_url: str | None) -> int:
    """Copy the objects that SLUGs' acquisitions and runs (or a version folder) name from another store."""
    return _move("pull", slugs, from_url, store_url)


# --- repositories -------------------------------------------------------------------------------------------------


@cli.command("init")
@click.argument("directory", default=".")
@click.option("--example", is_flag=True, help="also add the example dataset, its upstream files and a plan")
def init_cmd(directory: str, example: bool) -> int:
    """Make DIRECTORY a governed repository (main and release branches); adds only what is missing."""
    from kfm_gitops.repository import init

    extra = None
    if example:
        from kfm_gitops.example import repository_files

        extra = repository_files()
    result = init(Path(directory), extra)
    where = result.root
    if result.created_repository:
        click.echo(f"created a git repository in {where}")
    for rel in result.added:
        click.echo(f"  added {rel}")
    if result.main_commit:
        click.echo(f"committed on main: {result.main_commit[:12]}")
    if result.release_commit:
        click.echo(f"committed on release: {result.release_commit[:12]}")
    for note in result.notes:
        click.echo(f"note: {note}")
    if not (result.added or result.main_commit or result.release_commit):
        click.echo(f"{where} is already a governed repository; nothing to add")
    else:
        click.echo("next: `pre-commit install`, then `kfm plan new SLUG ...` for a backfill")
    return EXIT_OK


@cli.command("quickstart")
@click.argument("directory")
def quickstart_cmd(directory: str) -> int:
    """Make a governed repository in DIRECTORY (new or empty) and run the example's story: first release, backfill,
    quarantine."""
    from kfm_gitops.quickstart import quickstart

    return quickstart(Path(directory), click.echo)


# --- the one exit path --------------------------------------------------------------------------------------------


def _requested_format(options: list[str]) -> str:
    """The --format of the command line (text unless json or github is asked for), read before click has run, so
    that a command that stops early still answers a machine in its format."""
    for i, word in enumerate(options):
        if word == "--format" and i + 1 < len(options):
            return options[i + 1]
        if word.startswith("--format="):
            return word.split("=", 1)[1]
    return "text"


def _machine_failure(fmt: str, exc: KfmError) -> None:
    """A command that stopped before its report: for --format json a JSON document on stdout, for github the
    annotations and the step summary; the text on stderr stays as it is."""
    from kfm_gitops.findings import Finding, Location, Report, github_annotation, step_summary

    if fmt not in ("json", "github"):
        return
    findings = list(exc.findings) if isinstance(exc, FindingsError) else [
        Finding(str(getattr(exc, "code", "KFM_ERROR")), exc.message,
                Location(exc.location) if exc.location else None, hint=exc.hint)]
    if fmt == "json":
        click.echo(json.dumps({"ok": False, "error": exc.message, "findings": [f.as_dict() for f in findings]},
                              indent=2))
        return
    for f in findings:
        click.echo(github_annotation(f))
    step_summary(Report([exc.message], findings), "input")


def _print_findings(exc: FindingsError) -> None:
    click.echo(f"kfm: {exc.message}", err=True)
    for f in exc.findings:
        click.echo(f"  {f.text()}", err=True)


def _traceback() -> None:
    import traceback

    traceback.print_exc()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    options = args[:args.index("--")] if "--" in args else args  # after `--` every word is an argument
    debug = "--debug" in options or os.environ.get("KFM_DEBUG") == "1"
    if "--debug" in options[1:]:  # accepted anywhere on the line, not only before the command
        rest = args[len(options):]
        args = ["--debug", *[a for a in options if a != "--debug"], *rest]
    if debug:
        os.environ["KFM_DEBUG"] = "1"  # deeper layers that turn exceptions into findings show tracebacks too
    try:
        rv = cli.main(args=args, prog_name="kfm", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("kfm: interrupted", err=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("kfm: interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except FindingsError as exc:
        if debug:
            _traceback()
        _print_findings(exc)
        _machine_failure(_requested_format(options), exc)
        return exc.exit_code
    except KfmError as exc:
        if debug:
            _traceback()
        click.echo(f"kfm: {exc.diagnostics()}", err=True)
        _machine_failure(_requested_format(options), exc)
        return exc.exit_code
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:  # the machine or the network said no: not a defect of kfm, and nothing to report
        if debug:
            _traceback()
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"kfm: {exc.strerror or exc}{where}", err=True)
        click.echo("  hint: check the path, its permissions, the free space or the network; --debug shows where",
                   err=True)
        return EXIT_FINDINGS
    except Exception as exc:
        if debug:
            _traceback()
        click.echo(f"kfm: internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("  hint: re-run with --debug for a traceback, and report it", err=True)
        return EXIT_INTERNAL
    return int(rv) if isinstance(rv, int) else EXIT_OK
