"""Findings: a failed check is data, not an exception. Rendering to text, JSON and GitHub annotations."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning", "notice"]


@dataclass(frozen=True, slots=True)
class Location:
    path: str
    line: int | None = None  # 1-based
    col: int | None = None  # 1-based

    def __str__(self) -> str:
        if self.line is None:
            return self.path
        if self.col is None:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    message: str
    location: Location | None = None
    severity: Severity = "error"
    hint: str | None = None

    def text(self) -> str:
        where = f"{self.location}: " if self.location else ""
        tail = f" (hint: {self.hint})" if self.hint else ""
        level = "" if self.severity == "error" else f"{self.severity}: "
        return f"{where}{level}{self.code}: {self.message}{tail}"

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "severity": self.severity, "message": self.message}
        if self.location is not None:
            out["path"] = self.location.path
            out["line"] = self.location.line
            out["col"] = self.location.col
        if self.hint:
            out["hint"] = self.hint
        return out


@dataclass(slots=True)
class Report:
    """What one validating command found, over all the files it was given."""

    checked: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def extend(self, findings: Iterable[Finding]) -> None:
        self.findings.extend(findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        # Fail closed: a report that checked nothing is not a pass.
        return bool(self.checked) and not self.errors


def _gh_escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_escape_prop(s: str) -> str:
    return _gh_escape_data(s).replace(":", "%3A").replace(",", "%2C")


def github_annotation(f: Finding) -> str:
    props: list[str] = []
    if f.location is not None:
        props.append(f"file={_gh_escape_prop(f.location.path)}")
        if f.location.line is not None:
            props.append(f"line={f.location.line}")
        if f.location.col is not None:
            props.append(f"col={f.location.col}")
    props.append(f"title={_gh_escape_prop(f.code)}")
    message = f.message + (f" (hint: {f.hint})" if f.hint else "")
    return f"::{f.severity} {','.join(props)}::{_gh_escape_data(message)}"


Verb = str | tuple[str, str]  # what a summary says of the things that passed: one word, or (singular, plural)


def summary(report: Report, what: str, verb: Verb = "valid") -> str:
    """The closing line of a report: ``what`` names the things checked ("plan"), ``verb`` what passing means for
    them ("valid", "acquired", ("passes", "pass"))."""
    n = len(report.checked)
    things = what if n == 1 else what + "s"
    if not report.checked:
        return f"no {what} checked: nothing to validate is a failure"
    errors = len(report.errors)
    if errors == 0:
        said = verb if isinstance(verb, str) else verb[0 if n == 1 else 1]
        return f"{n} {things} {said}"
    return f"{n} {things} checked, {errors} error{'s' if errors != 1 else ''}"


def step_summary_markdown(report: Report, what: str, verb: Verb = "valid") -> str:
    """A Markdown section for a GitHub job's summary page: the closing line, then a table of the findings."""
    mark = "passed" if report.ok else "failed"
    out = [f"### kfm: {summary(report, what, verb)} ({mark})", ""]
    if report.findings:
        out += ["| where | code | severity | message |", "| --- | --- | --- | --- |"]
        for f in report.findings:
            message = f.message + (f" ({f.hint})" if f.hint else "")
            cells = [str(f.location) if f.location else "", f.code, f.severity, message]
            out.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(out) + "\n\n"


def sort_findings(findings: Sequence[Finding]) -> list[Finding]:
    def key(f: Finding) -> tuple[str, int, int, str]:
        loc = f.location
        return (loc.path if loc else "", (loc.line or 0) if loc else 0, (loc.col or 0) if loc else 0, f.code)

    return sorted(findings, key=key)
