"""`kfm backfill` and `kfm process`: run a plan's chunks and roll them up into a version."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kfm_gitops.cli._output import Summary
from kfm_gitops.cli._shared import (
    emit,
    format_option,
    require_config,
    store_for,
    store_option,
)
from kfm_gitops.errors import EXIT_FINDINGS, EXIT_OK

if TYPE_CHECKING:
    pass

@click.command("process", short_help="Process one acquired chunk (no roll-up)")
@click.argument("plan_file", metavar="PLAN")
@click.option("--chunk", "key", required=True, metavar="KEY", help="the chunk to process")
@store_option
def process_cmd(plan_file: str, key: str, store_url: str | None) -> int:
    """Run one chunk acquired by `kfm acquire` through WORK to PROCESSED and write its run folder (no roll-up)."""
    from kfm_gitops.backfill import process_acquired
    from kfm_gitops.plan import load_plan

    path = Path(plan_file)
    cfg = require_config(path.parent)
    result, folder = process_acquired(cfg, load_plan(path, cfg), key, store_for(cfg, store_url))
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


@click.group(short_help="Run a backfill plan, roll up a version")
def backfill() -> None:
    """Run a backfill plan: chunks in parallel, resumable, rolled up into a dataset version."""


def _print_dry_run(items: list[dict[str, Any]]) -> None:
    click.echo(f"dry run: {len(items)} chunk(s); nothing is written")
    for item in items:
        reuse = f"reuse {item['reuse']}" if item["reuse"] else "run"
        if item["upstream_changed"]:
            reuse += f" (upstream changed since: acquisition {item['upstream_changed']} supersedes the one it used)"
        click.echo(f"  {item['chunk']:<12} [{item['start']}, {item['end']})  partitions {', '.join(item['partitions'])}"
                   f"  -> {reuse}")
        for src in item["sources"][:3]:
            click.echo(f"  {'':<12} source {src}")
        if len(item["sources"]) > 3:
            click.echo(f"  {'':<12} ... and {len(item['sources']) - 3} more source pattern(s)")


def _report_backfill(result: Any, fmt: str) -> int:
    from kfm_gitops.findings import Report

    findings = [f for c in result.chunks for f in c.findings] + result.findings
    report = Report([c.key for c in result.chunks], findings)
    if fmt == "json":
        click.echo(json.dumps({"ok": result.ok, "version": result.version, "version_folder": result.version_folder,
                               "notes": result.notes, "next": result.next_step, "summary": result.tally(), "chunks": [
                                   {"chunk": c.key, "state": c.state, "run": c.run_folder,
                                    "partitions": c.partitions, "rows": list(c.rows)} for c in result.chunks],
                               "findings": [f.as_dict() for f in findings]}, indent=2))
        return EXIT_OK if result.ok else EXIT_FINDINGS
    for note in result.notes:
        click.echo(f"note: {note}")
    if findings:
        emit(report, fmt, Summary("chunk", show=False))
    if result.version_folder:
        click.echo(f"version {result.version}: {result.version_folder}/ (the plan's expected_dataset_version_id is "
                   "set)")
        if not result.next_step:
            click.echo("next: commit the plan and its evidence (data/raw/, releases/) in the plan PR")
    elif result.version:
        click.echo(f"version {result.version} (unchanged)")
    if result.next_step:
        click.echo(f"next: {result.next_step}")
    _print_summary(result.tally())
    return EXIT_OK if result.ok and report.ok else EXIT_FINDINGS


def _print_summary(tally: dict[str, Any]) -> None:
    """The run's last lines: its chunks by state, its rows, its version and how long it took."""
    chunks = tally["chunks"]
    states = ", ".join(f"{chunks[s]} {s}" for s in ("done", "empty", "reused", "failed"))
    states += "".join(f", {chunks[s]} {s}" for s in ("quarantined", "pending") if chunks[s])
    rows = tally["rows"]
    reasons = ", ".join(f"{n} {reason}" for reason, n in tally["quarantine"].items())
    click.echo(f"summary: {sum(chunks.values())} chunk(s): {states}; version {tally['version'] or 'none'}; "
               f"{tally['elapsed_s']} s")
    click.echo(f"         rows: {rows['in']:,} in, {rows['out']:,} out, {rows['quarantined']:,} quarantined"
               + (f" ({reasons})" if reasons else ""))


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


@backfill.command("run", short_help="Run a plan's chunks and roll up its version")
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
    cfg = require_config(path.parent)
    p = load_plan(path, cfg)
    selected = select_chunks(p, list(chunks)) if chunks else p.chunks()  # an unknown key stops here
    store = store_for(cfg, store_url)
    if not dry_run:
        bf.check_inputs(cfg, p)  # uncommitted inputs are refused before anything is said
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


@backfill.command("rollup", short_help="Roll up chunk runs made elsewhere")
@click.argument("plan_file", metavar="PLAN")
@store_option
@format_option
def backfill_rollup(plan_file: str, store_url: str | None, fmt: str) -> int:
    """Assemble the version from chunk runs made here or on other machines (sharing a store)."""
    from kfm_gitops import backfill as bf
    from kfm_gitops.plan import load_plan

    path = Path(plan_file)
    cfg = require_config(path.parent)
    p = load_plan(path, cfg)
    result = bf.run_backfill(cfg, p, store_for(cfg, store_url), rollup_only=True)
    return _report_backfill(result, fmt)


@backfill.command("matrix", short_help="Print the chunks as a CI job matrix")
@click.argument("plan_file", metavar="PLAN")
@click.option("--shards", type=click.IntRange(1, 256), default=None,
              help="jobs to deal the chunks into (default: the plan's max_parallelism; a matrix holds 256 at most)")
def backfill_matrix(plan_file: str, shards: int | None) -> int:
    """Print the chunks dealt into shards, as JSON for a CI job matrix: {"include": [{"shard": "1/N", "chunks":
    "KEY KEY ..."}]}. Each job runs its shard with `kfm backfill run PLAN --chunk KEY ...`."""
    from kfm_gitops.backfill import matrix
    from kfm_gitops.plan import load_plan

    path = Path(plan_file)
    p = load_plan(path, require_config(path.parent))
    click.echo(json.dumps(matrix([c.key for c in p.chunks()], shards or p.max_parallelism)))
    return EXIT_OK
