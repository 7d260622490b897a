"""`kfm release propose`, `kfm promote`, `kfm rollback`, `kfm status`, `kfm history`, `kfm ledger verify`: what is
published, and how it moves."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from kfm_gitops.cli._output import Summary
from kfm_gitops.cli._shared import emit, format_choice, format_option, require_config, store_for, store_option
from kfm_gitops.errors import EXIT_OK

if TYPE_CHECKING:
    from kfm_gitops.approvals import Approval
    from kfm_gitops.config import Config
    from kfm_gitops.release import Pointer, Promotion, Proposal


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "none"


def _said_proposal(p: Proposal, what: str) -> None:
    click.echo(f"{what} {p.pointer.slug} {p.pointer.version_id} ({p.event}; published now: "
               f"{p.published_now or 'nothing'})")
    click.echo(f"  branch {p.branch}: {len(p.commits)} commit(s) on top of release")
    click.echo(f"  evidence commit {_short(p.pointer.evidence_commit)} on main, manifest {p.pointer.manifest_digest}")
    click.echo(f"next: open a pull request of {p.branch} into release (`git push origin {p.branch}`); the gates run "
               "on it, and merging it is the decision. Then `kfm promote` moves the alias (on GitHub, the reconcile "
               "workflow does).")


@click.group("release", short_help="Propose a version for publication")
def release() -> None:
    """Release pull requests: a branch from release that changes only a dataset's published.yaml."""


@release.command("propose", short_help="A release branch that publishes a version")
@click.argument("slug")
@click.argument("version", required=False)
@click.option("--reason", default="", help='why (a rolled-back version returns only with "republish: ...")')
def release_propose(slug: str, version: str | None, reason: str) -> int:
    """Make a branch from release whose one commit points releases/SLUG/published.yaml at VERSION (default: the
    newest version on main that builds on what is published now)."""
    from kfm_gitops.release import propose

    _said_proposal(propose(require_config(), slug, version, reason), "proposed")
    return EXIT_OK


def approval_finder(config: Config, pointer: Pointer) -> Sequence[Approval]:
    """Approvals from GitHub reviews in a workflow (GITHUB_TOKEN and GITHUB_REPOSITORY set), else Approved-by
    trailers."""
    from kfm_gitops.release import trailer_approvals

    if os.environ.get("GITHUB_TOKEN") and os.environ.get("GITHUB_REPOSITORY"):
        from kfm_gitops._github import github_approvals

        return github_approvals(config, pointer)
    return trailer_approvals(config, pointer)


def _said_promotion(p: Promotion) -> None:
    if p.event is None:
        click.echo(f"{p.slug}: nothing to do (published/{p.slug} shows {p.version_id})")
        return
    if p.finished:
        click.echo(f"{p.slug}: finished an earlier promote of {p.version_id}: alias {_short(p.alias_from)} -> "
                   f"{_short(p.alias_to)}")
        return
    click.echo(f"{p.slug}: {p.event} of {p.version_id}")
    click.echo(f"  gates {' '.join(r.gate for r in p.gates)} passed; approvals: "
               + (", ".join(f"{a.role} {a.principal} ({a.source})" for a in p.approvals) or "none"))
    click.echo(f"  ledger entry in release {_short(p.ledger_commit)}; alias published/{p.slug} "
               f"{_short(p.alias_from)} -> {_short(p.alias_to)}; tag datasets/{p.slug}/{p.version_id}")


def _said_open_proposals(cfg: Config, p: Promotion) -> None:
    """Nothing to do while a proposal waits: say which, and that merging it into release comes first."""
    from kfm_gitops.release import status

    if p.event is None:
        waiting = status(cfg, p.slug).proposals
        if waiting:
            click.echo(f"  open proposal(s): {', '.join(waiting)}: merge one into release (its pull request), then "
                       "promote")


@click.command("promote", short_help="Move aliases to what release publishes")
@click.argument("slugs", nargs=-1)
@click.option("--push", "remote", default=None, metavar="REMOTE",
              help="then push release, the aliases and their tags in one atomic push with leases")
@click.option("--reindex", is_flag=True, help="then rebuild the projections of the datasets whose alias moved")
@click.option("--target", default=None, metavar="URL", help="with --reindex: the projection (default: DuckDB)")
@store_option
@format_choice("text", "json")
def promote_cmd(slugs: tuple[str, ...], remote: str | None, reindex: bool, target: str | None, store_url: str | None,
                fmt: str) -> int:
    """Reconcile: for each dataset whose published.yaml on release differs from its alias published/SLUG, gate the
    version again (fail closed), append a ledger entry on release, move the alias and tag the evidence commit."""
    from kfm_gitops.receipts import actor
    from kfm_gitops.release import Actor, gate_runner, promote, push, remote_refs

    cfg = require_config()
    before = remote_refs(cfg, remote) if remote else {}
    done = promote(cfg, slugs, gates=gate_runner(store_for(cfg, store_url)), approvals=approval_finder,
                   actor=Actor(actor(None)["principal"]))
    pushed = push(cfg, remote, done, before) if remote else []
    moved = [p.slug for p in done if p.alias_to and p.alias_to != p.alias_from]
    rebuilt = []
    if reindex and moved:
        from kfm_gitops.projections import reindex as rebuild

        rebuilt = rebuild(cfg, moved, target, store=store_for(cfg, store_url), moved=True)
    said = [f"{r.slug}: projection rebuilt from {r.version_id} ({r.rows} rows, {r.digest})" for r in rebuilt]
    if fmt == "json":
        click.echo(json.dumps({"ok": True, "pushed": pushed, "reindexed": said, "promotions": [
            {"slug": p.slug, "event": p.event, "version": p.version_id, "alias_from": p.alias_from,
             "alias_to": p.alias_to, "finished": p.finished} for p in done]}, indent=2))
        return EXIT_OK
    for p in done:
        _said_promotion(p)
        _said_open_proposals(cfg, p)
    if not done:
        click.echo("nothing is published yet: propose a version (`kfm release propose SLUG`)")
    if pushed:
        click.echo(f"pushed to {remote}: {', '.join(pushed)}")
    for line in said:
        click.echo(line)
    return EXIT_OK


@click.command("rollback", short_help="A release branch that rolls a dataset back")
@click.argument("slug")
@click.option("--to", "to", default=None, metavar="VERSION", help="default: the version published before")
@click.option("--reason", required=True, help="what is wrong with the published version (goes in the incident note)")
@store_option
def rollback_cmd(slug: str, to: str | None, reason: str, store_url: str | None) -> int:
    """Prepare the rollback on a branch from release: the revert of the commit that last changed published.yaml
    (or the pointer written back to VERSION), and an incident note. The target must still verify."""
    from kfm_gitops.release import rollback, target_check

    cfg = require_config()
    _said_proposal(rollback(cfg, slug, to=to, reason=reason, check=target_check(cfg, store_for(cfg, store_url))),
                   "rollback of")
    return EXIT_OK


@click.command("status", short_help="What is published, and what is pending")
@click.argument("slugs", nargs=-1)
def status_cmd(slugs: tuple[str, ...]) -> int:
    """For each dataset: the published version, its alias, since when, what is pending, open proposals and the
    versions on main that build on what is published."""
    from kfm_gitops.dataset import list_slugs
    from kfm_gitops.release import status

    cfg = require_config()
    for slug in slugs or tuple(list_slugs(cfg.root)):
        s = status(cfg, slug)
        click.echo(slug)
        click.echo(f"  published   {s.alias_version or 'nothing'}"
                   + (f" ({s.last_event}, since {s.since})" if s.alias_version else ""))
        click.echo(f"  alias       published/{slug} at {_short(s.alias)}")
        click.echo("  pending     " + (f"release names {s.published or 'nothing'}: run `kfm promote`" if s.pending
                                       else "nothing"))
        click.echo(f"  proposals   {', '.join(s.proposals) or 'none'}")
        click.echo(f"  to propose  {', '.join(s.candidates) or 'none'}")
    return EXIT_OK


@click.command("history", short_help="Every alias move of a dataset")
@click.argument("slug")
@format_choice("text", "json")
def history_cmd(slug: str, fmt: str) -> int:
    """Every alias move of SLUG, oldest first, with who did it and the approvals, from its ledger on release."""
    from kfm_gitops.release import history

    entries = history(require_config(), slug)
    if fmt == "json":
        click.echo(json.dumps(entries, indent=2))
        return EXIT_OK
    if not entries:
        click.echo(f"{slug}: nothing was ever published")
    for e in entries:
        approvals = ", ".join(f"{a['role']} {a['principal']}" for a in e["approvals"]) or "no approvals"
        click.echo(f"{e['seq']:>4}  {e['created_at']}  {e['event_type']:<10} {e['subject']['dataset_version_id']}  "
                   f"by {e['principal']}; {approvals}" + (f"; reason: {e['reason']}" if e["reason"] else ""))
    return EXIT_OK


@click.group("ledger", short_help="The audit ledger")
def ledger_group() -> None:
    """The audit ledger on the release branch."""


@ledger_group.command("verify", short_help="Recompute a ledger's hash chain")
@click.argument("slugs", nargs=-1)
@format_option
def ledger_verify(slugs: tuple[str, ...], fmt: str) -> int:
    """Recompute the hash chain of each dataset's ledger on release; name the first bad line."""
    from kfm_gitops.dataset import list_slugs
    from kfm_gitops.findings import Report
    from kfm_gitops.release import verify_ledger

    cfg = require_config()
    report = Report()
    entries = 0
    for slug in slugs or tuple(list_slugs(cfg.root)):
        verified = verify_ledger(cfg, slug)
        if verified is None:
            continue
        shown, n, findings = verified
        report.checked.append(shown)
        report.extend(findings)
        entries += n
    return emit(report, fmt, Summary("ledger", ("verifies", "verify"), detail=f" ({entries} entries)"))

