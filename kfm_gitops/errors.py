"""The one error tree: every failure kfm knows about, each with a finding-style code and the exit code of DESIGN.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from kfm_gitops.findings import Finding

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_CONFLICT = 4
EXIT_INTERRUPTED = 130


class KfmError(Exception):
    """A failure kfm understands: refused, invalid input. ``hint`` says what to do next.

    ``code`` names the failure the way a finding does (what ``--format json`` and ``github`` report): each class
    has its own, and a raise site may name a finer one.
    """

    exit_code: ClassVar[int] = EXIT_FINDINGS
    code: str = "KFM_ERROR"

    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None,
                 location: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.hint = hint
        self.location = location

    def diagnostics(self) -> str:
        head = f"{self.location}: {self.message}" if self.location else self.message
        return f"{head}\n  hint: {self.hint}" if self.hint else head


class UsageError(KfmError):
    """The command line itself is wrong."""

    exit_code = EXIT_USAGE


class ConflictError(KfmError):
    """A branch, alias or lock moved under us: re-read and retry."""

    exit_code = EXIT_CONFLICT


class InternalError(KfmError):
    """kfm could not do its job (a bug, or an environment it cannot work in)."""

    exit_code = EXIT_INTERNAL


class FindingsError(KfmError):
    """A command needed valid input and got findings; the CLI prints each and exits 1."""

    def __init__(self, findings: list[Finding], message: str | None = None) -> None:
        n = len(findings)
        super().__init__(message or f"{n} error{'s' if n != 1 else ''}")
        self.findings = findings
