"""`kfm gate run`: the fail-closed gates A-G on a version folder, or on what a range of commits changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kfm_gitops.cli._shared import format_option, require_config, store_for, store_option, version_folder
from kfm_gitops.errors import EXIT_FINDINGS, EXIT_OK, UsageError

if TYPE_CHECKING:
    from kfm_gitops.config import Config
    from kfm_gitops.gates.model import ReleaseContext


@click.group("gate", short_help="Run the fail-closed gates A-G")
def gate() -> None:
    """The seven gates a version passes before it is published: A identity, B licensing, C policy, D catalog,
    E qa, F receipts, G manifest."""


@gate.command("run", short_help="Run gates on a version folder or on a change")
@click.argument("which", metavar="{A..G|all}")
@click.argument("version_dir", required=False, metavar="[VERSION_DIR]")
@click.option("--changed", "changed", default=None, metavar="BASE..HEAD",
              help="gate what the commits change (a pull request): new versions, plans, rules, evidence")
@store_option
@format_option
def gate_run(which: str, version_dir: str | None, changed: str | None, store_url: str | None, fmt: str) -> int:
    """Run gate WHICH (A to G, several like AC, or all) on VERSION_DIR, or on what BASE..HEAD changes. Exits 1 when
    a gate fails; a gate that cannot read what it needs, raises, or evaluates nothing fails."""
    from kfm_gitops._fs import display_path
    from kfm_gitops.cli import REPORTER_BY_NAME
    from kfm_gitops.gates import run_gates, select
    from kfm_gitops.gates.changes import gate_changes

    gates = select(which)
    if (version_dir is None) == (changed is None):
        raise UsageError("name one of VERSION_DIR and --changed BASE..HEAD",
                         hint="`kfm gate run all releases/<slug>/<version>` or `kfm gate run all --changed "
                         "origin/main..HEAD`")
    if changed is not None:
        cfg = require_config()
        from kfm_gitops.cli.release import approval_finder
        from kfm_gitops.release import release_context

        def hook(config: Config, base: str, head: str, slug: str) -> ReleaseContext:
            return release_context(config, base, head, slug, approval_finder)

        results = gate_changes(cfg, changed, store_for(cfg, store_url), gates, release_hook=hook)
        subject = f"the change {changed}"
    else:
        assert version_dir is not None
        folder = version_folder(version_dir)
        cfg = require_config(folder)
        results = run_gates(cfg, folder.resolve(), store_for(cfg, store_url), gates="".join(gates))
        subject = display_path(folder)
    REPORTER_BY_NAME[fmt]().gates(results, subject)
    return EXIT_OK if results and all(r.status == "passed" for r in results) else EXIT_FINDINGS
