"""`kfm verify`: check that the bytes a repository's evidence names are in the store and intact, step by step.

Each step is a named check over the datasets given: ``raw`` (the objects the acquisition manifests name) and
``processed`` (the artifacts every version's checksums.json names). The steps are a literal list, so that a step
(the published chain, the ledger) is added in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
from kfm_gitops.errors import EXIT_FINDINGS, EXIT_OK

if TYPE_CHECKING:
    from kfm_gitops.config import Config
    from kfm_gitops.findings import Finding
    from kfm_gitops.store import Store

Outcome = tuple[list[str], list["Finding"], int, int]  # checked, findings, objects named, objects missing


@dataclass(frozen=True, slots=True)
class Step:
    """One named check of `kfm verify`: what it checks (``what``, for its closing line) and how."""

    name: str
    what: str
    run: Callable[[Config, Store, list[str], int | None], Outcome]


def _raw(cfg: Config, store: Store, slugs: list[str], jobs: int | None) -> Outcome:
    from kfm_gitops.acquire import verify_raw

    return verify_raw(cfg, store, slugs, jobs)


def _processed(cfg: Config, store: Store, slugs: list[str], jobs: int | None) -> Outcome:
    from kfm_gitops.versions import verify_processed

    return verify_processed(cfg, store, slugs, jobs)


def _published(cfg: Config, store: Store, slugs: list[str], jobs: int | None) -> Outcome:
    from kfm_gitops.release import verify_published

    checked: list[str] = []
    findings: list[Finding] = []
    for slug in slugs:
        found = verify_published(cfg, slug)
        if found is not None:
            checked.append(found[0])
            findings += found[1]
    return checked, findings, 0, 0


def _projections(cfg: Config, store: Store, slugs: list[str], jobs: int | None) -> Outcome:
    from kfm_gitops.findings import Finding, Location
    from kfm_gitops.projections import projection_state
    from kfm_gitops.release import alias_version

    checked: list[str] = []
    findings: list[Finding] = []
    for slug in slugs:
        published, state = alias_version(cfg, slug), projection_state(cfg, slug)
        if not published or state is None:
            continue
        checked.append(f"projection of {slug}")
        if state[0] != published:
            findings.append(Finding("PROJECTION_LAGS", f"the projection of {slug} was built from {state[0]}, but "
                                    f"published/{slug} publishes {published}", Location(f"published/{slug}"),
                                    severity="warning", hint=f"rebuild it: `kfm reindex {slug}`"))
    return checked, findings, 0, 0


STEPS: tuple[Step, ...] = (
    Step("raw", "acquisition manifest", _raw),
    Step("processed", "version", _processed),
    Step("published", "published dataset", _published),
    Step("projections", "projection", _projections),
)


@click.command("verify", short_help="Check that the store holds every byte the evidence names")
@click.argument("slugs", nargs=-1, metavar="[SLUG]...")
@click.option("--raw", "raw_only", is_flag=True, help="only the RAW objects the acquisition manifests name")
@click.option("--processed", "processed_only", is_flag=True,
              help="only the PROCESSED artifacts the versions' checksums.json name")
@click.option("--jobs", type=click.IntRange(1, 256), default=None, help="hashing threads (default: all cores)")
@store_option
@format_option
def verify_cmd(slugs: tuple[str, ...], raw_only: bool, processed_only: bool, jobs: int | None,
               store_url: str | None, fmt: str) -> int:
    """Re-hash every object the evidence of the datasets (all, or SLUGs) names, step by step: RAW (the acquisition
    manifests' objects) and PROCESSED (every version's artifacts, against its checksums.json). Each missing or
    corrupt object is named, with what to run."""
    from kfm_gitops.findings import Report

    cfg = require_config()
    datasets = dataset_slugs(cfg, slugs)
    store = store_for(cfg, store_url)
    chosen = {"raw"} if raw_only else set()
    chosen |= {"processed"} if processed_only else set()
    steps = [s for s in STEPS if not chosen or s.name in chosen]
    everything = Report()
    said: list[tuple[Report, Summary]] = []
    for step in steps:
        checked, findings, named, missing = step.run(cfg, store, datasets, jobs)
        report = Report([f"{step.name}:{c}" for c in checked], findings)
        everything.checked.extend(report.checked)
        everything.extend(findings)
        said.append((report, Summary(step.what, detail=objects_detail(store, named, missing) if checked and named
                                     else "")))
    if fmt == "json":
        return emit(everything, fmt, Summary("check"))
    for report, words in said:
        if report.checked or len(steps) == 1:
            emit(report, fmt, words)
        else:  # one step with nothing to check (no version yet) is no failure while the others checked something
            click.echo(f"no {words.what} to check yet")
    if not everything.checked and len(steps) > 1:
        click.echo("nothing checked, which is a failure: a backfill run acquires data and makes versions "
                   "(`kfm backfill run PLAN`)")
    return EXIT_OK if everything.ok else EXIT_FINDINGS
