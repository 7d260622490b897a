"""`kfm policy`: the Rego policies and their tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kfm_gitops.cli._output import Summary
from kfm_gitops.cli._shared import (
    emit,
    format_option,
    require_config,
)

if TYPE_CHECKING:
    pass

@click.group(short_help="Policy as code: the Rego policies")
def policy() -> None:
    """Policy as code: the Rego policies under policies/ and their tests."""


@policy.command("test", short_help="Run the policies' test cases")
@format_option
def policy_test(fmt: str) -> int:
    """Run the policies' test cases (policies/tests/*.cases.json), each on a fresh engine, in a subprocess."""
    from kfm_gitops.findings import Report
    from kfm_gitops.policy import test_policies

    cfg = require_config()
    checked, findings = test_policies(cfg.root)
    return emit(Report(checked, findings), fmt, Summary("policy case", ("passes", "pass")))
