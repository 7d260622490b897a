"""`kfm dataset`: validate dataset contracts and compute their spec_hash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kfm_gitops.cli._output import Summary
from kfm_gitops.cli._shared import (
    emit,
    format_choice,
    format_option,
    require_config,
)
from kfm_gitops.errors import EXIT_OK, KfmError

if TYPE_CHECKING:
    pass

@click.group(short_help="Validate dataset contracts; print a spec_hash")
def dataset() -> None:
    """Validate dataset contracts and compute their spec_hash."""


@dataset.command("validate", short_help="Check dataset contracts")
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
    return emit(report, fmt, Summary("contract file"))


@dataset.command("hash", short_help="Print a dataset's spec_hash")
@click.argument("slug")
@format_choice("text", "json", help="text for people, json for scripts")
def dataset_hash(slug: str, fmt: str) -> int:
    """Print the dataset's spec_hash (sha256 of the canonical JSON of its dataset.yaml and pipeline.yaml)."""
    from kfm_gitops.dataset import require_contract

    cfg = require_config()
    contract = require_contract(cfg.root, slug, cfg.vocab)
    if fmt == "json":
        click.echo(json.dumps({"dataset_slug": slug, "spec_hash": contract.spec_hash}, indent=2))
    else:
        click.echo(contract.spec_hash)
    return EXIT_OK
