"""`kfm versions`, `kfm show`, `kfm export`: read a dataset's versions: list them, describe one, and copy one's
partitions out as real files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kfm_gitops.cli._shared import dataset_slugs, format_choice, require_config, store_for, store_option
from kfm_gitops.errors import EXIT_FINDINGS, EXIT_OK, FindingsError

if TYPE_CHECKING:
    from kfm_gitops.config import Config
    from kfm_gitops.store import Store
    from kfm_gitops.versions import PartitionView, VersionManifest, VersionView

text_or_json = format_choice("text", "json", help="text for people, json for machines")


def _time_column(cfg: Config, slug: str) -> str | None:
    """The column of the dataset's partitioning axis (its contract at HEAD), or None to take the first timestamp."""
    from kfm_gitops.dataset import load_contract

    contract = load_contract(cfg.root, slug, cfg.vocab)
    if isinstance(contract, list):
        return None
    axis = contract.time_axes.get(contract.partitioning.axis)
    return str(axis["column"]) if isinstance(axis, dict) and "column" in axis else None


def _version_at(arg: str) -> tuple[Config, VersionManifest]:
    """The repository and the version an argument names (a version id, or a version folder)."""
    from kfm_gitops.versions import find_version, is_version_dir, read_version

    cfg = require_config(Path(arg) if is_version_dir(Path(arg)) else None)
    version = read_version(find_version(cfg, arg))
    if isinstance(version, list):
        raise FindingsError(version, f"the version {arg} cannot be read")
    return cfg, version


def _obligations(version: VersionManifest) -> str:
    def one(o: dict[str, Any]) -> str:
        params = o["params"] if isinstance(o.get("params"), dict) else {}
        said = ", ".join(f"{k}={', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in params.items())
        return f"{o.get('type')} ({said})" if said else str(o.get("type"))

    return "; ".join(one(o) for o in version.obligations) or "none"


def _rows(view: VersionView) -> str:
    return f"{view.rows:,}" if view.rows is not None else "?"


def _view_json(view: VersionView) -> dict[str, Any]:
    from kfm_gitops.versions import PartitionStats

    v = view.version
    return {"version": v.version_id, "dataset": v.slug, "base": v.base or None, "plan": v.plan,
            "spec_hash": v.spec_hash, "label": v.policy_label, "obligations": list(v.obligations),
            "published": view.published, "rows": view.rows, "span": list(view.span),
            "partitions": [{"partition": p.key, "digest": p.digest, "rows": p.stats.rows if isinstance(
                p.stats, PartitionStats) else None, "span": [p.stats.start, p.stats.end] if isinstance(
                p.stats, PartitionStats) else None, "unreadable": p.stats if isinstance(p.stats, str) else None,
                "made_in": p.origin.version_id, "chunk": p.origin.chunk, "run": p.origin.run_folder}
                for p in view.partitions],
            "quarantine": dict(view.quarantine), "gaps": list(view.gaps)}


def _keys(view: VersionView) -> str:
    keys = [p.key for p in view.partitions]
    return f"{len(keys)}: {keys[0]} .. {keys[-1]}" if len(keys) > 1 else f"{len(keys)}: {''.join(keys)}"


@click.command("versions", short_help="List a dataset's versions")
@click.argument("slug")
@store_option
@text_or_json
def versions_cmd(slug: str, store_url: str | None, fmt: str) -> int:
    """List the versions of dataset SLUG, each after the one it builds on: its base, partitions, rows (read from
    the artifacts' footers in the store), policy label, plan, and whether the release branch publishes it."""
    from kfm_gitops.versions import (
        PartitionStats,
        VersionManifest,
        describe_version,
        lineage_order,
        list_versions,
        published_version,
    )

    cfg = require_config()
    dataset_slugs(cfg, (slug,))
    store = store_for(cfg, store_url)
    found = list_versions(cfg, slug)
    broken = [f for v in found.values() if isinstance(v, list) for f in v]
    readable = {vid: v for vid, v in found.items() if isinstance(v, VersionManifest)}
    published = published_version(cfg, slug)
    column = _time_column(cfg, slug)
    cache: dict[str, PartitionStats | str] = {}
    views = [describe_version(cfg, readable[vid], store, published=published, time_column=column, cache=cache)
             for vid in lineage_order(readable)]
    if fmt == "json":
        click.echo(json.dumps({"dataset": slug, "published": published or None, "versions": [
            _view_json(v) for v in views], "findings": [f.as_dict() for f in broken]}, indent=2))
        return EXIT_FINDINGS if broken else EXIT_OK
    _print_versions(cfg, store, slug, views, published)
    for f in broken:
        click.echo(f.text())
    return EXIT_FINDINGS if broken else EXIT_OK


def _print_versions(cfg: Config, store: Store, slug: str, views: list[VersionView], published: str) -> None:
    now = (f"{cfg.release_branch} publishes {published}" if published else
           f"nothing is published on {cfg.release_branch} yet")
    click.echo(f"{slug}: {len(views)} version(s); {now}")
    if not views:
        click.echo(f"  a backfill run makes the first one: `kfm backfill run plans/{slug}/<plan>.yml`")
        return
    rows = [("version", "base", "partitions", "rows", "label", "plan", "")]
    rows += [(v.version.version_id, v.version.base or "(first release)", _keys(v), _rows(v), v.version.policy_label,
              v.version.plan, "published" if v.published else "") for v in views]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        click.echo(("  " + "  ".join(cells)).rstrip())
    if any(v.rows is None for v in views):
        _unreadable(cfg, store)


def _unreadable(cfg: Config, store: Store) -> None:
    from kfm_gitops.store import pull_hint

    click.echo(f"rows ?: an artifact is not readable in the store {store.url}; {pull_hint(store, cfg.shared_store)}")


@click.command("show", short_help="Describe a version: partitions, quarantine, gaps")
@click.argument("version_arg", metavar="VERSION")
@store_option
@text_or_json
def show_cmd(version_arg: str, store_url: str | None, fmt: str) -> int:
    """Describe VERSION (a version id, or its folder): its manifest in words, each partition with its rows and time
    span (from the artifact's footer in the store) and where it was made, the rows quarantined by reason, and the
    gaps (partitions with no data)."""
    from kfm_gitops.versions import describe_version, published_version

    cfg, version = _version_at(version_arg)
    store = store_for(cfg, store_url)
    view = describe_version(cfg, version, store, published=published_version(cfg, version.slug),
                            time_column=_time_column(cfg, version.slug))
    if fmt == "json":
        click.echo(json.dumps(_view_json(view), indent=2))
        return EXIT_OK
    _print_show(cfg, view, store.url)
    if view.rows is None:
        _unreadable(cfg, store)
    return EXIT_OK


def _partition_line(p: PartitionView, version_id: str) -> str:
    from kfm_gitops.versions import PartitionStats

    if isinstance(p.stats, PartitionStats):
        said = f"{p.stats.rows:>7,} rows  {p.stats.start or '?'} .. {p.stats.end or '?'}"
    else:
        said = f"{'?':>7} rows  {p.stats}"
    where = "new here" if p.origin.version_id == version_id else f"from {p.origin.version_id}"
    run = f"run {Path(p.origin.run_folder).name}" if p.origin.run_folder else "its run is unknown"
    return f"    {p.key:<10} {said}  {p.digest[:19]}  {where} ({run})"


def _print_show(cfg: Config, view: VersionView, store: str) -> None:
    from kfm_gitops._fs import display_path

    v = view.version
    new = [p.key for p in view.partitions if p.origin.version_id == v.version_id]
    base = (f"{v.base}: {len(view.partitions) - len(new)} partition(s) carried, {len(new)} new ({', '.join(new)})"
            if v.base else "none: a first release")
    start, end = view.span
    click.echo(f"version {v.version_id} of {v.slug}")
    click.echo(f"  folder      {display_path(v.folder)}/")
    click.echo(f"  base        {base}")
    click.echo(f"  plan        {v.plan}")
    click.echo(f"  spec_hash   {v.spec_hash}")
    click.echo(f"  label       {v.policy_label}; obligations: {_obligations(v)}")
    click.echo(f"  published   {'yes, on ' + cfg.release_branch if view.published else 'no'}")
    click.echo(f"  partitions  {len(view.partitions)}, {_rows(view)} rows, {start or '?'} .. {end or '?'} "
               f"(read from the artifacts in {store})")
    for p in view.partitions:
        click.echo(_partition_line(p, v.version_id))
    total = sum(view.quarantine.values())
    reasons = ", ".join(f"{n} {reason}" for reason, n in view.quarantine.items())
    click.echo(f"  quarantine  {total} row(s)" + (f": {reasons}" if reasons else "")
               + " (ids and reasons in each run's quarantine.json)" * bool(total))
    click.echo(f"  gaps        {', '.join(view.gaps) + ' (no data)' if view.gaps else 'none'}")


@click.command("export", short_help="Copy a version's partitions out as real files")
@click.argument("version_arg", metavar="VERSION")
@click.argument("target", metavar="DIR")
@store_option
@text_or_json
def export_cmd(version_arg: str, target: str, store_url: str | None, fmt: str) -> int:
    """Copy the partitions of VERSION (a version id, or its folder) into DIR as real GeoParquet files, named as its
    checksums.json names them (processed/<slug>/<partition>.parquet), each verified while it is copied; checksums.json
    and SHA256SUMS go beside them (`sha256sum -c SHA256SUMS` checks the copy). A file kfm would write that exists
    with other bytes is refused, never overwritten."""
    from kfm_gitops.versions import SUMS_FILE, export_version

    cfg, version = _version_at(version_arg)
    folder = Path(target)
    done = export_version(cfg, version, store_for(cfg, store_url), folder)
    if fmt == "json":
        click.echo(json.dumps({"version": version.version_id, "target": str(folder), "files": [
            {"path": e.path, "digest": e.digest, "already_there": e.present} for e in done]}, indent=2))
        return EXIT_OK
    parts = len(version.partitions)
    click.echo(f"exported {version.version_id} into {folder}: {parts} partition(s), each verified while copied")
    for e in done:
        click.echo(f"  {e.path:<40} {e.digest}" + ("  (already there)" if e.present else ""))
    click.echo(f"check it: cd {folder} && sha256sum -c {SUMS_FILE}")
    return EXIT_OK
