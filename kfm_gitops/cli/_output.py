"""Reporters: one per output format, chosen from ``REPORTER_BY_NAME`` in ``kfm_gitops.cli``. A reporter prints a
report's findings and its closing line; only the github reporter writes the job's step summary, and only where
GitHub asks for one ($GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import click

from kfm_gitops.findings import Finding, Report, Verb, github_annotation, step_summary_markdown, summary


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


class TextReporter:
    def emit(self, report: Report, words: Summary) -> None:
        lines = [f.text() for f in report.findings]
        if words.show:
            lines.append(words.line(report))
        if lines:
            click.echo("\n".join(lines))

    def failure(self, message: str, findings: Sequence[Finding]) -> None:
        """A command that stopped before its report: the text on stderr already says it all."""


class JsonReporter:
    def emit(self, report: Report, words: Summary) -> None:
        doc = {"ok": report.ok, "checked": report.checked, "findings": [f.as_dict() for f in report.findings]}
        click.echo(json.dumps(doc, indent=2))

    def failure(self, message: str, findings: Sequence[Finding]) -> None:
        doc = {"ok": False, "error": message, "findings": [f.as_dict() for f in findings]}
        click.echo(json.dumps(doc, indent=2))


class GithubReporter:
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
