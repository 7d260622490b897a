"""`kfm catalog`: a version's DCAT, STAC and PROV records: build them, validate them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kfm_gitops.cli._output import Summary
from kfm_gitops.cli._shared import emit, format_option, require_config, store_for, store_option, version_folder
from kfm_gitops.errors import EXIT_FINDINGS, EXIT_OK


@click.group("catalog", short_help="Build and validate a version's catalogs")
def catalog() -> None:
    """The DCAT, STAC and PROV records of dataset versions."""


@catalog.command("build", short_help="Build a version's catalogs (or check them)")
@click.argument("version_dir")
@store_option
def catalog_build(version_dir: str, store_url: str | None) -> int:
    """Build the catalogs of VERSION_DIR from its evidence. A version that has none gets them (new files only);
    one that has them is checked: the rebuilt bytes must equal the committed ones."""
    from kfm_gitops._fs import display_path
    from kfm_gitops.catalog import build_catalogs, write_catalogs

    folder = version_folder(version_dir)
    cfg = require_config(folder)
    files = build_catalogs(cfg.root, folder.resolve(), store_for(cfg, store_url))
    present = {rel for rel in files if (folder / rel).is_file()}
    if not present:
        write_catalogs(folder, files)
        click.echo(f"wrote {len(files)} catalog file(s) into {display_path(folder)}/catalog/")
        return EXIT_OK
    differ = sorted(rel for rel in files if rel not in present or (folder / rel).read_bytes() != files[rel])
    for rel in differ:
        click.echo(f"{display_path(folder / rel)}: CATALOG_DIFFERS: the rebuilt bytes differ from the committed file "
                   "(hint: catalogs are rebuilt byte for byte from the evidence; restore the file from git)")
    click.echo(f"{len(files)} catalog file(s) rebuilt, " + (f"{len(differ)} differ" if differ else "all identical"))
    return EXIT_FINDINGS if differ else EXIT_OK


@catalog.command("validate", short_help="Validate a version's catalogs and links")
@click.argument("version_dir")
@click.option("--links", "links_file", default=None, metavar="FILE", help="write the link report (JSON) here")
@store_option
@format_option
def catalog_validate(version_dir: str, links_file: str | None, store_url: str | None, fmt: str) -> int:
    """Validate VERSION_DIR's catalogs (STAC core schemas, kfm's DCAT profile with SHACL, PROV and its lineage
    rules), resolve every link and EvidenceRef, and check that the three agree with the manifest's digests."""
    from kfm_gitops._fs import atomic_write
    from kfm_gitops.catalog import validate_catalogs
    from kfm_gitops.findings import Report

    folder = version_folder(version_dir)
    cfg = require_config(folder)
    check = validate_catalogs(cfg.root, folder.resolve(), store_for(cfg, store_url), vocab=cfg.vocab)
    report = check.link_report()
    if links_file:
        atomic_write(Path(links_file), (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
    counts = ", ".join(f"{n} {status.lower()}" for status, n in report["counts"].items() if n)
    return emit(Report(list(check.checked), list(check.findings)), fmt,
                Summary("catalog file", detail=f"; links: {counts or 'none'}"))


@catalog.command("export", short_help="A static catalog of what is published")
@click.argument("directory")
@click.option("--base-url", default=None, metavar="URL",
              help="where the store's objects are served (default: the store's own URL)")
@store_option
def catalog_export(directory: str, base_url: str | None, store_url: str | None) -> int:
    """Write a static STAC + DCAT catalog of the published versions into DIRECTORY, for hosting: a root STAC catalog
    linking each dataset's published collection, a DCAT catalog of the datasets, asset links as store URLs."""
    from kfm_gitops.export import export

    cfg = require_config()
    done = export(cfg, Path(directory), base_url or store_for(cfg, store_url).url)
    for p in done:
        click.echo(f"  {p.slug} {p.version_id} (evidence commit {p.evidence_commit[:12]})")
    click.echo(f"exported {len(done)} published dataset(s) into {directory}: catalog.json (STAC), "
               "catalog.jsonld (DCAT)")
    return EXIT_OK
