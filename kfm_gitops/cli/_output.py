"""Reporters: one per output format, chosen from ``REPORTER_BY_NAME`` in ``kfm_gitops.cli``. A reporter prints a
report's findings and its closing line; only the github reporter writes the job's step summary, and only where
GitHub asks for one ($GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from kfm_gitops.findings import Finding, Report, Verb, github_annotation, step_summary_markdown, summary

if TYPE_CHECKING:
    from kfm_gitops.gates.model import GateResult


@dataclass(frozen=True, slots=True)
class Summary:
    """How a command's closing line speaks: ``what`` it checked and what passing means (``verb``); ``detail`` is
    appended to the line for people (text and github), ``show`` False leaves the line out."""

    what: str
    verb: Verb = "valid"
    detail: str = ""
    show: bool = True

    def line(self, report: Report) -> str:
        return summary(report, self.what, self.verb) + self.detail


def gate_line(result: GateResult) -> str:
    """`A identity ........ Passed`: a gate, its name and its verdict, aligned."""
    return f"{result.gate} {result.name} {'.' * max(2, 16 - len(result.name))} {result.status.capitalize()}"


def gates_closing(results: Sequence[GateResult], subject: str) -> str:
    failed = [r.gate for r in results if r.status != "passed"]
    if not results:
        return f"no gate ran on {subject}: nothing gated is a failure"
    if not failed:
        return f"{len(results)} gate{'s' if len(results) != 1 else ''} passed on {subject}"
    return f"{len(results)} gate{'s' if len(results) != 1 else ''} run on {subject}, {len(failed)} failed: " \
        + ", ".join(failed)


def gate_lines(results: Sequence[GateResult], subject: str) -> list[str]:
    """Each gate's line, its findings (with what to do) and what it evaluated; then the closing line."""
    lines = []
    for r in results:
        lines.append(gate_line(r))
        lines += [f"    {f.text()}" for f in r.findings]
        lines += [f"    evaluated: {e}" for e in r.evaluated]
    return [*lines, gates_closing(results, subject)]


def gates_markdown(results: Sequence[GateResult], subject: str) -> str:
    """The step summary of a gate run: one row per gate, then one per finding."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    ok = bool(results) and all(r.status == "passed" for r in results)
    out = [f"### kfm gate run: {cell(gates_closing(results, subject))} ({'passed' if ok else 'failed'})", "",
           "| gate | status | evaluated |", "| --- | --- | --- |"]
    out += [f"| {r.gate} {r.name} | {r.status} | {cell('; '.join(r.evaluated))} |" for r in results]
    found = [(r, f) for r in results for f in r.findings]
    if found:
        out += ["", "| gate | where | code | message |", "| --- | --- | --- | --- |"]
        out += [f"| {r.gate} | {cell(str(f.location or ''))} | {f.code} | "
                f"{cell(f.message + (f' ({f.hint})' if f.hint else ''))} |" for r, f in found]
    return "\n".join(out) + "\n\n"


class TextReporter:
    def gates(self, results: Sequence[GateResult], subject: str) -> None:
        click.echo("\n".join(gate_lines(results, subject)))

    def emit(self, report: Report, words: Summary) -> None:
        lines = [f.text() for f in report.findings]
        if words.show:
            lines.append(words.line(report))
        if lines:
            click.echo("\n".join(lines))

    def failure(self, message: str, findings: Sequence[Finding]) -> None:
        """A command that stopped before its report: the text on stderr already says it all."""


class JsonReporter:
    def gates(self, results: Sequence[GateResult], subject: str) -> None:
        doc = {"ok": bool(results) and all(r.status == "passed" for r in results), "subject": subject,
               "gates": [{"gate": r.gate, "name": r.name, "status": r.status, "evaluated": list(r.evaluated),
                          "findings": [f.as_dict() for f in r.findings]} for r in results]}
        click.echo(json.dumps(doc, indent=2))

    def emit(self, report: Report, words: Summary) -> None:
        doc = {"ok": report.ok, "checked": report.checked, "findings": [f.as_dict() for f in report.findings]}
        click.echo(json.dumps(doc, indent=2))

    def failure(self, message: str, findings: Sequence[Finding]) -> None:
        doc = {"ok": False, "error": message, "findings": [f.as_dict() for f in findings]}
        click.echo(json.dumps(doc, indent=2))


class GithubReporter:
    def gates(self, results: Sequence[GateResult], subject: str) -> None:
        lines = [github_annotation(f) for r in results for f in r.findings]
        click.echo("\n".join([*lines, *gate_lines(results, subject)]))
        self._step_summary(gates_markdown(results, subject))

    def emit(self, report: Report, words: Summary) -> None:
        lines = [github_annotation(f) for f in report.findings]
        if words.show:
            lines.append(words.line(report))
        if lines:
            click.echo("\n".join(lines))
        self._step_summary(step_summary_markdown(report, words.what, words.verb))

    def failure(self, message: str, findings: Sequence[Finding]) -> None:
        for f in findings:
            click.echo(github_annotation(f))
        self._step_summary(step_summary_markdown(Report([message], list(findings)), "input"))

    @staticmethod
    def _step_summary(markdown: str) -> None:
        target = os.environ.get("GITHUB_STEP_SUMMARY")
        if target:
            with open(target, "a", encoding="utf-8") as fh:
                fh.write(markdown)
