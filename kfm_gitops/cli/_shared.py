"""What every verb group shares: the --format and --store options, finding the repository, and reporting."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kfm_gitops.errors import EXIT_FINDINGS, EXIT_OK, FindingsError, KfmError

if TYPE_CHECKING:
    from click.decorators import FC

    from kfm_gitops.cli._output import Summary
    from kfm_gitops.config import Config
    from kfm_gitops.findings import Finding, Report
    from kfm_gitops.store import Store

FORMAT_KEY = "kfm.format"


def _remember_format(ctx: click.Context, param: click.Parameter, value: str) -> str:
    # ctx.meta is shared by every context of one invocation: the exit path reads the format from there, so a
    # command that stops early still answers a machine in the format it asked for.
    ctx.meta[FORMAT_KEY] = value
    return value


def format_choice(*names: str, help: str = "text for people, json for machines, github for workflow annotations"
                  ) -> Callable[[FC], FC]:
    return click.option("--format", "fmt", type=click.Choice(list(names)), default="text", show_default=True,
                        help=help, callback=_remember_format)


format_option = format_choice("text", "json", "github")
store_option = click.option("--store", "store_url", default=None, metavar="URL",
                            help="object store (default: KFM_STORE, else kfm.yaml's store)")


def emit(report: Report, fmt: str, words: Summary) -> int:
    """Print a report through the format's reporter; the exit code it means."""
    from kfm_gitops.cli import REPORTER_BY_NAME

    REPORTER_BY_NAME[fmt]().emit(report, words)
    return EXIT_OK if report.ok else EXIT_FINDINGS


def config_for(start: Path, cache: dict[Path, Config | list[Finding]]
               ) -> tuple[Path | None, Config | list[Finding] | None]:
    from kfm_gitops.config import find_root, load_config

    root = find_root(start)
    if root is None:
        return None, None
    if root not in cache:
        cache[root] = load_config(root)
    return root, cache[root]


def require_config(start: Path | None = None, standalone_hint: bool = False) -> Config:
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


def store_for(cfg: Config, override: str | None) -> Store:
    from kfm_gitops.config import store_url
    from kfm_gitops.store import Store

    return Store(store_url(cfg, override))


def dataset_slugs(cfg: Config, slugs: tuple[str, ...]) -> list[str]:
    """The datasets a command works on: those named (each must exist), else every dataset of the repository."""
    from kfm_gitops.dataset import list_slugs

    known = list_slugs(cfg.root)
    unknown = [s for s in slugs if s not in known]
    if unknown:
        raise KfmError(f"no dataset {', '.join(unknown)} in {cfg.root}/datasets",
                       hint=f"datasets here: {', '.join(known) or 'none'}")
    return list(slugs) or known


def objects_detail(store: Store, named: int, missing: int) -> str:
    """A verifying command's closing line's tail: how many objects were re-hashed, how many are missing, where."""
    if missing:
        return f" ({named} object(s) named: {named - missing} re-hashed, {missing} missing from {store.url})"
    return f" ({named} object(s) re-hashed in {store.url})"


def version_folder(arg: str) -> Path:
    """A VERSION_DIR argument: a folder holding a promotion manifest, else refused (exit 1)."""
    from kfm_gitops.versions import MANIFEST_FILE, is_version_dir

    folder = Path(arg)
    if not is_version_dir(folder):
        raise KfmError(f"{arg} is not a version folder", hint=f"a version folder holds {MANIFEST_FILE}: "
                       "releases/<slug>/<version>/")
    return folder
