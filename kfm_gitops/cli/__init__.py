"""The `kfm` command line: one module per verb group parses its options, calls the library and reports; this module
holds the reporters and the one exit path that maps every outcome to an exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from kfm_gitops import __version__
from kfm_gitops.cli._output import GithubReporter, JsonReporter, TextReporter
from kfm_gitops.cli._shared import FORMAT_KEY
from kfm_gitops.errors import (
    EXIT_FINDINGS,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    FindingsError,
    KfmError,
)

REPORTER_BY_NAME: dict[str, type[TextReporter | JsonReporter | GithubReporter]] = {
    "text": TextReporter,
    "json": JsonReporter,
    "github": GithubReporter,
}


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        os.environ["KFM_DEBUG"] = "1"  # deeper layers that turn exceptions into findings show tracebacks too


def _debug_option() -> click.Option:
    return click.Option(["--debug"], is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
                        help="show a traceback when something goes wrong")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="kfm")
def cli() -> None:
    """kfm: Git-native, fail-closed backfills. Plans in, governed releases out."""


def _register() -> None:
    from kfm_gitops.cli import (
        backfill,
        catalog,
        dataset,
        evidence,
        gate,
        manifest,
        plan,
        policy,
        projections,
        raw,
        release,
        report,
        repository,
        verify,
        versions,
    )

    for command in (plan.plan, dataset.dataset, raw.acquire_cmd, raw.raw, raw.store_group, backfill.process_cmd,
                    backfill.backfill, policy.policy, repository.init_cmd, repository.quickstart_cmd,
                    catalog.catalog, release.release, release.promote_cmd, release.rollback_cmd, release.status_cmd,
                    release.history_cmd, release.ledger_group, report.report_cmd, versions.versions_cmd,
                    versions.show_cmd, versions.export_cmd, verify.verify_cmd, gate.gate, evidence.evidence,
                    manifest.manifest, projections.reindex_cmd, projections.gaps_cmd, projections.doctor_cmd):
        cli.add_command(command)

    def add_debug(command: click.Command) -> None:
        # --debug is accepted anywhere on the line, before or after the command
        command.params.append(_debug_option())
        for sub in getattr(command, "commands", {}).values():
            add_debug(sub)

    add_debug(cli)


_register()


def _traceback() -> None:
    import traceback

    traceback.print_exc()


def _debugging() -> bool:
    return os.environ.get("KFM_DEBUG") == "1"


def _failed(exc: KfmError, fmt: str) -> int:
    """A command that stopped before its report: the diagnostics on stderr, and for machines their format too."""
    from kfm_gitops.findings import Finding, Location

    if _debugging():
        _traceback()
    if isinstance(exc, FindingsError):
        click.echo(f"kfm: {exc.message}", err=True)
        for f in exc.findings:
            click.echo(f"  {f.text()}", err=True)
        if exc.hint:
            click.echo(f"  hint: {exc.hint}", err=True)
        findings = list(exc.findings)
    else:
        click.echo(f"kfm: {exc.diagnostics()}", err=True)
        findings = [Finding(exc.code, exc.message,
                            Location(exc.location) if exc.location else None, hint=exc.hint)]
    REPORTER_BY_NAME.get(fmt, TextReporter)().failure(exc.message, findings)
    return exc.exit_code


def _run(args: list[str], contexts: list[click.Context]) -> int:
    with cli.make_context("kfm", args) as ctx:
        contexts.append(ctx)  # its meta, shared by every context below it, tells the exit path the --format asked
        rv = cli.invoke(ctx)
    return int(rv) if isinstance(rv, int) else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    contexts: list[click.Context] = []
    try:
        return _run(args, contexts)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("kfm: interrupted; run the same command again to resume (nothing half-written was kept)", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except KfmError as exc:
        return _failed(exc, str(contexts[0].meta.get(FORMAT_KEY, "text")) if contexts else "text")
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:  # the machine or the network said no: not a defect of kfm, and nothing to report
        if _debugging():
            _traceback()
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"kfm: {exc.strerror or exc}{where}", err=True)
        click.echo("  hint: check the path, its permissions, the free space or the network; --debug shows where",
                   err=True)
        return EXIT_FINDINGS
    except Exception as exc:
        if _debugging():
            _traceback()
        click.echo(f"kfm: internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("  hint: re-run with --debug for a traceback, and report it", err=True)
        return EXIT_INTERNAL

