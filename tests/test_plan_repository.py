"""Plan checks that need the governed repository: the dataset's contract, partitions, labels, prior versions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import Runner
from kfm_gitops.example import FIRST_PLAN

BASE = FIRST_PLAN


def write_variant(root: Path, name: str, *pairs: tuple[str, str]) -> str:
    text = (root / BASE).read_text()
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    rel = f"plans/ks_storm_reports/{name}.yml"
    (root / rel).write_text(text)
    return rel


def codes(out: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r": (?:warning: )?([A-Z_]+): ", out)]


def test_example_plan_is_valid_in_its_repository(governed: Path, kfm: Runner) -> None:
    r = kfm("plan", "validate")
    assert (r.code, r.out) == (0, "1 plan valid\n")


def test_plan_outside_a_repository_fails_closed(tmp_path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yml").write_text((Path(__file__).parent / "examples" / "valid" / "minimal.yml").read_text())
    r = kfm("plan", "validate", "p.yml")
    assert r.code == 1
    assert r.out.splitlines()[0] == (
        "p.yml: NO_REPOSITORY: no kfm.yaml in p.yml or any folder above it (hint: run `kfm init` to make a "
        "governed repository, or pass --standalone to check the file alone)"
    )


@pytest.mark.parametrize(("pairs", "expected"), [
    ([("dataset_slug: ks_storm_reports", "dataset_slug: ks_tornadoes")],
     ["PLAN_FOLDER_MISMATCH", "PLAN_UNKNOWN_DATASET"]),
    ([("time_axis: event_time", "time_axis: valid_time")], ["PLAN_TIME_AXIS"]),
    ([("timezone: UTC", "timezone: America/Chicago")], ["PLAN_TIMEZONE_MISMATCH"]),
    ([("mode: monthly", "mode: weekly")], ["PLAN_CHUNKING_TOO_FINE"]),
    ([("mode: monthly", "mode: daily")], ["PLAN_CHUNKING_TOO_FINE"]),
    ([('start: "2023-01-01T00:00:00Z"', 'start: "2023-01-15T00:00:00Z"')], ["PLAN_WINDOW_NOT_ALIGNED"]),
    ([('end: "2023-07-01T00:00:00Z"', 'end: "2023-07-01T00:00:00-05:00"')], ["PLAN_WINDOW_NOT_ALIGNED"]),
    ([("policy_label: public", "policy_label: restricted")], []),  # tightening is allowed
    ([("policy_label: public", "policy_label: public_generalized")], []),
    ([("obligations:\n    - ", "obligations:\n    - {\"type\": \"show_notice\"}\n    - ")], []),  # adding is allowed
    ([('{"type": "require_attribution", "params": {"text": "Storm reports: Kansas Frontier Matrix example upstream, '
       'CC BY 4.0"}}', '{"type": "show_notice"}')], ["PLAN_OBLIGATION_DROPPED"]),
    ([('prior_dataset_version_id: ""', 'prior_dataset_version_id: "2023-02.1a2b3c4d.5e6f7a8b"')],
     ["PLAN_PRIOR_VERSION"]),
    ([("missing_intervals: []", "missing_intervals: []\nexpected_outputs:\n  - {partition: 2023-03}")], []),
    ([("missing_intervals: []", "missing_intervals: []\nexpected_outputs:\n  - {partition: 2023-09}")],
     ["PLAN_EXPECTED_OUTPUT"]),
    ([("missing_intervals: []", "missing_intervals: []\nexpected_outputs:\n  - {partition: 2023-03-01}")],
     ["PLAN_EXPECTED_OUTPUT"]),
])
def test_repository_checks(governed: Path, kfm: Runner, pairs: list[tuple[str, str]], expected: list[str]) -> None:
    rel = write_variant(governed, "variant", *pairs)
    r = kfm("plan", "validate", rel)
    assert codes(r.out) == expected, r.out
    assert r.code == (1 if expected else 0)


def test_label_may_not_loosen(governed: Path, kfm: Runner) -> None:
    ds = governed / "datasets/ks_storm_reports/dataset.yaml"
    ds.write_text(ds.read_text().replace("label: public", "label: restricted"))
    rel = write_variant(governed, "loosen")
    r = kfm("plan", "validate", rel)
    assert r.code == 1
    assert "PLAN_LABEL_LOOSENS: policy_label 'public' is less restrictive than the dataset's 'restricted'" in r.out


def test_stricter_obligation_params_cover_the_contracts(governed: Path, kfm: Runner) -> None:
    ds = governed / "datasets/ks_storm_reports/dataset.yaml"
    text = ds.read_text().replace(
        "  obligations:\n",
        "  obligations:\n    - {type: generalize_geometry, params: {method: round_2_decimals}}\n"
        "    - {type: remove_attributes, params: {fields: [injuries]}}\n", 1)
    ds.write_text(text)
    stricter = write_variant(governed, "stricter", ("obligations:\n", (
        "obligations:\n    - {type: generalize_geometry, params: {method: round_1_decimals}}\n"
        "    - {type: redact_fields, params: {fields: [injuries, source]}}\n")))
    r = kfm("plan", "validate", stricter)
    assert (r.code, r.out) == (0, "1 plan valid\n")
    looser = write_variant(governed, "looser", ("obligations:\n", (
        "obligations:\n    - {type: generalize_geometry, params: {method: round_3_decimals}}\n"
        "    - {type: redact_fields, params: {fields: [source]}}\n")))
    r = kfm("plan", "validate", looser)
    assert codes(r.out) == ["PLAN_OBLIGATION_DROPPED", "PLAN_OBLIGATION_DROPPED"]


def test_invalid_contract_is_reported_on_the_plan(governed: Path, kfm: Runner) -> None:
    ds = governed / "datasets/ks_storm_reports/dataset.yaml"
    ds.write_text(ds.read_text().replace("cadence: P1M", "cadence: monthly"))
    r = kfm("plan", "validate", BASE)
    assert r.code == 1
    assert "PLAN_DATASET_INVALID: the contract of dataset 'ks_storm_reports' has 1 error(s)" in r.out
    assert "run `kfm dataset validate ks_storm_reports`" in r.out


def test_first_release_when_versions_exist_is_a_warning(governed: Path, kfm: Runner) -> None:
    version = governed / "releases/ks_storm_reports/2023-06.1a2b3c4d.5e6f7a8b"
    version.mkdir(parents=True)
    (version / "promotion-manifest.json").write_text("{}")
    r = kfm("plan", "validate", BASE)
    assert r.code == 0
    assert "warning: PLAN_PRIOR_VERSION: this plan says first release" in r.out
    rel = write_variant(governed, "based", ('prior_dataset_version_id: ""',
                                            'prior_dataset_version_id: "2023-06.1a2b3c4d.5e6f7a8b"'))
    r = kfm("plan", "validate", rel)
    assert "PLAN_PRIOR_VERSION" not in r.out


def test_validate_without_arguments_checks_every_plan(governed: Path, kfm: Runner) -> None:
    write_variant(governed, "second")
    write_variant(governed, "third", ("time_axis: event_time", "time_axis: valid_time"))
    r = kfm("plan", "validate")
    assert r.code == 1
    assert r.out.splitlines()[-1] == "3 plans checked, 1 error"


def test_invalid_kfm_yaml_fails_closed(governed: Path, kfm: Runner) -> None:
    (governed / "kfm.yaml").write_text("kfm_config_version: v2\n")
    r = kfm("plan", "validate", BASE)
    assert r.code == 1
    assert "CONFIG_INVALID" in r.out


def test_custom_vocabulary_from_kfm_yaml(governed: Path, kfm: Runner) -> None:
    cfg = governed / "kfm.yaml"
    cfg.write_text(cfg.read_text().replace("policy_labels: [public,", "policy_labels: [open, public,"))
    ds = governed / "datasets/ks_storm_reports/dataset.yaml"
    ds.write_text(ds.read_text().replace("label: public", "label: open"))
    r = kfm("plan", "validate", BASE)
    assert (r.code, r.out) == (0, "1 plan valid\n")
    r = kfm("plan", "validate", "--standalone", BASE)  # the default vocabulary does not know 'open'
    assert r.code == 0  # the plan itself still says public


def test_every_error_in_one_run(governed: Path, kfm: Runner) -> None:
    """Errors of the plan itself do not hide the errors found against the contract."""
    rel = write_variant(governed, "many", ("policy_label: public", "policy_label: publc"),
                        ('end: "2023-07-01T00:00:00Z"', 'end: "2023-07-15T00:00:00Z"'),
                        ("timezone: UTC", "timezone: America/Chicago"), ("reason: ", "reason: x #"))
    r = kfm("plan", "validate", rel)
    assert r.code == 1
    assert sorted(codes(r.out)) == ["PLAN_TIMEZONE_MISMATCH", "PLAN_WINDOW_NOT_ALIGNED", "POLICY_UNKNOWN_LABEL",
                                    "SCHEMA_VALUE"], r.out


def test_unknown_dataset_in_its_own_folder(governed: Path, kfm: Runner) -> None:
    text = (governed / BASE).read_text().replace("dataset_slug: ks_storm_reports", "dataset_slug: ks_tornadoes")
    (governed / "plans/ks_tornadoes").mkdir()
    (governed / "plans/ks_tornadoes/p.yml").write_text(text)
    r = kfm("plan", "validate", "plans/ks_tornadoes/p.yml")
    assert codes(r.out) == ["PLAN_UNKNOWN_DATASET"]


@pytest.mark.parametrize(("added", "message"), [
    ("{type: remove_attributes, params: {fields: [report_id]}}", "remove_attributes cannot remove report_id"),
    ("{type: redact_fields, params: {fields: [reporter]}}", "remove_attributes names 'reporter', which the contract "
     "does not declare"),
    ("{type: min_count_threshold, params: {min_count: 3, group_by: [nope]}}", "min_count_threshold groups by ['nope']"),
])
def test_an_obligation_the_data_cannot_take_is_found_at_its_line(governed: Path, kfm: Runner, added: str,
                                                                message: str) -> None:
    rel = write_variant(governed, "inapplicable", ("  obligations:\n", f"  obligations:\n    - {added}\n"))
    r = kfm("plan", "validate", rel)
    assert r.code == 1
    assert f"{rel}:27:7: PLAN_OBLIGATION_INAPPLICABLE: {message}" in r.out, r.out


def test_obligations_that_conflict_are_found_on_the_list(governed: Path, kfm: Runner) -> None:
    rel = write_variant(governed, "conflict", ("  obligations:\n", "  obligations:\n"
                        "    - {type: remove_attributes, params: {fields: [county]}}\n"
                        "    - {type: min_count_threshold, params: {min_count: 3, group_by: [county]}}\n"))
    r = kfm("plan", "validate", rel)
    assert r.code == 1
    assert f"{rel}:27:5: PLAN_OBLIGATION_INAPPLICABLE: min_count_threshold groups by ['county']" in r.out, r.out
