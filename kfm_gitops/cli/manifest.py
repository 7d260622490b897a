"""`kfm manifest validate FILES`: promotion manifests, receipts and acquisition manifests against their schemas and
the files beside them, without the object store (the hook kfm-manifest-validate)."""

from __future__ import annotations

from pathlib import Path

import click

from kfm_gitops.cli._output import Summary
from kfm_gitops.cli._shared import emit, format_option


@click.group("manifest", short_help="Validate manifests and receipts")
def manifest() -> None:
    """Promotion manifests, receipts and acquisition manifests."""


@manifest.command("validate", short_help="Validate manifests and receipts (no store needed)")
@click.argument("files", nargs=-1, metavar="FILE...")
@format_option
def manifest_validate(files: tuple[str, ...], fmt: str) -> int:
    """Check each FILE against its schema and the files beside it: a promotion manifest's ids, digests, artifacts,
    checksums and catalogs; a receipt's canonical form, its run folder and the files it records; an acquisition
    manifest's id and paths."""
    from kfm_gitops.findings import Report
    from kfm_gitops.gates.hooks import validate_files

    checked, findings = validate_files([Path(f) for f in files])
    return emit(Report(checked, findings), fmt, Summary("file"))
