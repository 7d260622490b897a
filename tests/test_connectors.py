"""Connector templates: how a pipeline names its upstream files, and what a contributor reads when a template is
wrong (a clean message naming the placeholder, never a Python exception's repr)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Runner
from kfm_gitops.connectors import TemplateError, Window, expand
from kfm_gitops.periods import get_zone, period_of_key

PLACEHOLDERS = "placeholders: {year} {month} {day} {quarter} {week} {isoyear} {key} {start} {end}"


def window(key: str, zone: str = "UTC") -> Window:
    z = get_zone(zone)
    p = period_of_key(key, z)
    return Window(p.key, p.start, p.end, z)


def test_expand_fills_every_placeholder_once_per_distinct_result() -> None:
    assert expand("{year}-{month}/*.csv", window("2023-Q1")) == ["2023-01/*.csv", "2023-02/*.csv", "2023-03/*.csv"]
    assert expand("{isoyear}-W{week}-{quarter}-{key}", window("2023-01-01")) == ["2022-W52-1-2023-01-01"]
    assert expand("{start}/{end}/{{literal}}", window("2023-01")) == [
        "2023-01-01T00:00:00Z/2023-02-01T00:00:00Z/{literal}"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{yeer}/*.csv", "template '{yeer}/*.csv': '{yeer}' is not a placeholder (did you mean '{year}'?); "
                         + PLACEHOLDERS),
        ("{year}-{mnoth}.csv", "template '{year}-{mnoth}.csv': '{mnoth}' is not a placeholder (did you mean "
                               "'{month}'?); " + PLACEHOLDERS),
        ("{nope}.csv", "template '{nope}.csv': '{nope}' is not a placeholder; " + PLACEHOLDERS),
        ("{}.csv", "template '{}.csv': '{}' is not a placeholder; " + PLACEHOLDERS),
        ("{0}.csv", "template '{0}.csv': '{0}' is not a placeholder; " + PLACEHOLDERS),
        ("{year.real}.csv", "template '{year.real}.csv': '{year.real}' is not a placeholder (did you mean "
                            "'{year}'?); " + PLACEHOLDERS),
        ("{year[0]}.csv", "template '{year[0]}.csv': '{year[0]}' is not a placeholder (did you mean '{year}'?); "
                          + PLACEHOLDERS),
        ("{year:>8}.csv", "template '{year:>8}.csv': '{year:>8}' has a format spec or conversion; write the "
                          "placeholder bare, as '{year}'"),
        ("{year!r}.csv", "template '{year!r}.csv': '{year!r}' has a format spec or conversion; write the "
                         "placeholder bare, as '{year}'"),
        ("{year.csv", "template '{year.csv': a '{' is not closed; write '{{' or '}}' for a literal brace"),
        ("year}.csv", "template 'year}.csv': a '}' is not opened; write '{{' or '}}' for a literal brace"),
        ("{year{month}}.csv", "template '{year{month}}.csv': a '{' is not closed; write '{{' or '}}' for a literal "
                              "brace"),
        ("{ year }.csv", "template '{ year }.csv': '{ year }' is not a placeholder (did you mean '{year}'?); "
                         + PLACEHOLDERS),
    ],
)
def test_a_bad_template_says_what_is_wrong_and_what_to_write(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        expand(template, window("2023-01"))
    assert str(info.value) == message
    assert "Error(" not in str(info.value)


def test_a_placeholder_typo_in_a_pipeline_is_a_located_finding(governed: Path, kfm: Runner) -> None:
    path = governed / "datasets/ks_storm_reports/pipeline.yaml"
    text = path.read_text()
    path.write_text(text.replace('pattern: "{year}-{month}/*.csv"', 'pattern: "{yeer}-{month}/*.csv"'))
    line = next(i for i, s in enumerate(path.read_text().splitlines(), 1) if "pattern:" in s)
    r = kfm("dataset", "validate", "ks_storm_reports")
    assert r.code == 1
    assert r.out.splitlines()[0] == (
        f"datasets/ks_storm_reports/pipeline.yaml:{line}:14: PIPELINE_TEMPLATE: template '{{yeer}}-{{month}}/*.csv': "
        "'{yeer}' is not a placeholder (did you mean '{year}'?); " + PLACEHOLDERS)
