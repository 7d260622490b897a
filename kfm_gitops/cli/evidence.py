"""`kfm evidence check-append-only`: what git would commit adds evidence, never edits or deletes it (the hook
kfm-evidence-append-only)."""

from __future__ import annotations

import click

from kfm_gitops.cli._output import Summary
from kfm_gitops.cli._shared import emit, format_option, require_config
from kfm_gitops.errors import EXIT_OK


@click.group("evidence", short_help="Check committed evidence")
def evidence() -> None:
    """Committed evidence: acquisition manifests, run folders, version folders, plans."""


@evidence.command("check-append-only", short_help="Refuse staged edits and deletions of committed evidence")
@format_option
def check_append_only(fmt: str) -> int:
    """Check what the index would commit against HEAD: new evidence files are fine; an edit or a deletion of a
    committed one, or a file added to a committed run or version folder, is refused."""
    from kfm_gitops.findings import Report
    from kfm_gitops.gates.hooks import staged_alterations

    staged, findings = staged_alterations(require_config())
    if not staged and not findings:
        if fmt == "text":
            click.echo("no evidence staged")
        return EXIT_OK
    return emit(Report(staged, findings), fmt, Summary("staged evidence path", ("is new", "are new")))
