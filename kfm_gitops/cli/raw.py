"""`kfm acquire`, `kfm raw verify`, `kfm store push|pull`: the RAW zone and the object stores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kfm_gitops.cli._output import Summary
from kfm_gitops.cli._shared import (
    dataset_slugs,
    emit,
    format_option,
    objects_detail,
    require_config,
    store_for,
    store_option,
)
from kfm_gitops.errors import EXIT_FINDINGS, EXIT_OK, KfmError

if TYPE_CHECKING:
    pass

@click.command("acquire", short_help="Acquire a plan's chunks into RAW")
@click.argument("plan_file", metavar="PLAN")
@click.option("--chunk", "chunks", multiple=True, metavar="KEY", help="only this chunk; repeat for several")
@store_option
@format_option
def acquire_cmd(plan_file: str, chunks: tuple[str, ...], store_url: str | None, fmt: str) -> int:
    """Acquire the plan's chunks into RAW: payloads and terms into the store, a manifest and a receipt each."""
    from kfm_gitops._fs import display_path
    from kfm_gitops.acquire import acquire
    from kfm_gitops.findings import Report
    from kfm_gitops.plan import load_plan

    path = Path(plan_file)
    cfg = require_config(path.parent)
    p = load_plan(path, cfg)
    store = store_for(cfg, store_url)
    outcomes = acquire(cfg, p, store, list(chunks) or None)
    report = Report([o.key for o in outcomes], [f for o in outcomes for f in o.findings])
    if fmt == "json":
        click.echo(json.dumps({"ok": report.ok, "plan": display_path(path), "store": store.url, "chunks": [
            {"key": o.key, "acquisition_id": o.acquisition_id, "manifest": o.manifest, "reused": o.reused,
             "objects": o.objects, "bytes": o.bytes, "run": o.run_folder, "receipt_digest": o.receipt_digest,
             "notes": o.notes, "findings": [f.as_dict() for f in o.findings]} for o in outcomes]}, indent=2))
        return EXIT_OK if report.ok else EXIT_FINDINGS
    if fmt == "text":
        click.echo(f"acquiring {len(outcomes)} chunk(s) of {p.slug} into {store.url}")
        for o in outcomes:
            state = "FAILED" if o.failed else ("reused" if o.reused else ("empty" if o.objects == 0 else "new"))
            detail = f"{o.objects} object(s), {o.bytes:,} bytes -> {o.manifest}" if o.manifest else "no manifest"
            click.echo(f"  {o.key:<12} {state:<7} {detail}")
            click.echo(f"  {'':<12} receipt {o.run_folder}/receipt.json")
        for note in (n for o in outcomes for n in o.notes):
            click.echo(f"note: {note}")
    return emit(report, fmt, Summary("chunk", "acquired"))


@click.group(short_help="Check the RAW zone")
def raw() -> None:
    """Check the RAW zone."""


@raw.command("verify", short_help="Re-hash every RAW object the manifests name")
@click.argument("slugs", nargs=-1)
@click.option("--jobs", type=click.IntRange(1, 256), default=None, help="hashing threads (default: all cores)")
@store_option
@format_option
def raw_verify(slugs: tuple[str, ...], jobs: int | None, store_url: str | None, fmt: str) -> int:
    """Re-hash every object the acquisition manifests name; name each missing or corrupt one."""
    from kfm_gitops.acquire import verify_raw
    from kfm_gitops.findings import Report

    cfg = require_config()
    store = store_for(cfg, store_url)
    checked, findings, n, missing = verify_raw(cfg, store, dataset_slugs(cfg, slugs), jobs)
    return emit(Report(checked, findings), fmt, Summary("acquisition manifest",
                                                        detail=objects_detail(store, n, missing)))


@click.group("store", short_help="Move objects between object stores")
def store_group() -> None:
    """Move a dataset's objects between object stores."""


def _move(direction: str, targets: tuple[str, ...], other: str, store_url: str | None) -> int:
    from kfm_gitops.acquire import objects_of
    from kfm_gitops.store import Store

    cfg = require_config()
    here, there = store_for(cfg, store_url), Store(other)
    digests = objects_of(cfg, list(targets))
    source, target = (here, there) if direction == "push" else (there, here)
    if digests and not source.reachable():
        raise KfmError(f"there is no store at {source.url}",
                       hint="check the URL or path; a local store is a folder that holds sha256/")
    copied, present = source.copy_to(target, sorted(digests))
    click.echo(f"{direction}: {copied} object(s) copied, {present} already there ({source.url} -> {target.url})")
    return EXIT_OK


@store_group.command("push", short_help="Copy a dataset's objects to another store")
@click.argument("slugs", nargs=-1, metavar="[SLUG|VERSION_DIR]...")
@click.option("--to", "to_url", required=True, metavar="URL", help="the store to copy into")
@click.option("--store", "store_url", default=None, metavar="URL",
              help="the store to copy from (default: KFM_STORE, else kfm.yaml's store)")
def store_push(slugs: tuple[str, ...], to_url: str, store_url: str | None) -> int:
    """Copy the objects that SLUGs' acquisitions and runs (or a version folder) name into another store."""
    return _move("push", slugs, to_url, store_url)


@store_group.command("pull", short_help="Copy a dataset's objects from another store")
@click.argument("slugs", nargs=-1, metavar="[SLUG|VERSION_DIR]...")
@click.option("--from", "from_url", required=True, metavar="URL", help="the store to copy from")
@click.option("--store", "store_url", default=None, metavar="URL",
              help="the store to copy into (default: KFM_STORE, else kfm.yaml's store)")
def store_pull(slugs: tuple[str, ...], from_url: str, store_url: str | None) -> int:
    """Copy the objects that SLUGs' acquisitions and runs (or a version folder) name from another store."""
    return _move("pull", slugs, from_url, store_url)
