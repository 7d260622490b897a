"""The gates A-G on the quickstart's three versions: all pass; one realistic defect per gate makes that gate (and,
where the evidence is shared, the gates that read it) fail with a message that says what to fix; a gate that
raises, reads nothing or evaluates nothing fails closed; the release checks (approvals, the ledger's chain, the
promotion rules) with constructed release contexts and real ledgers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import git, isolate
from kfm_gitops.approvals import Approval
from kfm_gitops.config import Config, load_config
from kfm_gitops.findings import Finding
from kfm_gitops.gates import GATE_NAMES, GATES, gate_release, run_gates
from kfm_gitops.gates.model import GateResult, ReleaseContext
from kfm_gitops.identity import sha256_digest
from kfm_gitops.ledger import head_of, new_line
from kfm_gitops.store import Store

SLUG = "ks_storm_reports"
FIRST, GAP_FILLED, GENERALISED = "2023-06.69a8eb0e.7df9ce5a", "2023-06.69a8eb0e.fbdb57cb", "2023-06.69a8eb0e.307e516a"
VERSIONS = (FIRST, GAP_FILLED, GENERALISED)
LEDGER = f"releases/{SLUG}/ledger.jsonl"


def folder(root: Path, version: str) -> Path:
    return root / "releases" / SLUG / version


def store_of(root: Path) -> Store:
    return Store(str(root / ".kfm" / "objects"))


def config_of(root: Path) -> Config:
    cfg = load_config(root)
    assert isinstance(cfg, Config)
    return cfg


def gate(root: Path, version: str, gates: str = "all", **kwargs: Any) -> dict[str, GateResult]:
    results = run_gates(config_of(root), folder(root, version), store_of(root), gates=gates, **kwargs)
    return {r.gate: r for r in results}


def failed(results: dict[str, GateResult]) -> list[str]:
    return [g for g, r in results.items() if r.status == "failed"]


def codes(result: GateResult) -> list[str]:
    return sorted(f.code for f in result.findings)


def one(result: GateResult, code: str) -> Finding:
    hits = [f for f in result.findings if f.code == code]
    assert len(hits) == 1, [f.text() for f in result.findings]
    return hits[0]


def commit(root: Path, message: str) -> None:
    """The defect lands in a commit, as a pull request brings it (the working tree is clean again)."""
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)


def edit(path: Path, mutate: Any) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    mutate(doc)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def overwrite(store: Store, digest: str, data: bytes) -> None:
    path = store.local_path(digest)
    assert path is not None and path.is_file()
    path.chmod(0o644)
    path.write_bytes(data)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`kfm quickstart`: three versions with their evidence committed on main; shared, only read."""
    from kfm_gitops.cli import main

    base = tmp_path_factory.mktemp("gates")
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, base)
        assert main(["quickstart", str(base / "qs")]) == 0
        yield base / "qs"


@pytest.fixture
def repo(example: Path, tmp_path: Path) -> Path:
    """A copy of the example to break."""
    dest = tmp_path / "repo"
    shutil.copytree(example, dest, symlinks=True)
    return dest


def test_the_registry_is_the_gates_of_the_design() -> None:
    assert list(GATES) == list(GATE_NAMES)
    assert {g: m.__name__.rsplit(".", 1)[1] for g, m in GATES.items()} == dict(GATE_NAMES)
    assert all(g == m.GATE for g, m in GATES.items())


@pytest.mark.parametrize("version", VERSIONS)
def test_every_gate_passes_on_the_example_versions(example: Path, version: str) -> None:
    results = gate(example, version)
    assert list(results) == list("ABCDEFG")
    for r in results.values():
        assert r.status == "passed" and r.findings == (), (r.gate, [f.text() for f in r.findings])
        assert r.evaluated, r.gate
    assert "1 new and 5 carried partition(s): 30 object(s) re-hashed" in " ".join(gate(example, GAP_FILLED, "A")[
        "A"].evaluated)


# --- one realistic defect per gate --------------------------------------------------------------------------------


def test_a_stored_object_that_no_longer_matches_its_digest_fails_gate_a(repo: Path) -> None:
    manifest = json.loads((folder(repo, GAP_FILLED) / "promotion-manifest.json").read_text())
    carried = next(p for p in manifest["partitions"] if p["partition"] == "2023-01")
    overwrite(store_of(repo), carried["raw"][0], b"report_id,event_time\nedited,2023-01-01T00:00:00Z\n")
    results = gate(repo, GAP_FILLED)
    assert failed(results) == ["A"]
    f = one(results["A"], "HASH_MISMATCH")
    assert f.message == (f"partition 2023-01: RAW object {carried['raw'][0]} does not hash to its name in the store "
                         f"{store_of(repo).url}")
    assert f.hint is not None and "kfm store pull" in f.hint
    assert str(f.location) == f"releases/{SLUG}/{GAP_FILLED}/promotion-manifest.json"


def test_a_version_id_that_does_not_recompute_fails_gate_a(repo: Path) -> None:
    moved = folder(repo, "2023-06.69a8eb0e.00000000")
    shutil.copytree(folder(repo, GAP_FILLED), moved)
    edit(moved / "promotion-manifest.json", lambda d: d.update(dataset_version_id="2023-06.69a8eb0e.00000000"))
    results = gate(repo, "2023-06.69a8eb0e.00000000", "A")
    assert codes(results["A"]) == ["VERSION_ID_MISMATCH"]
    assert f"give the id {GAP_FILLED}, not 2023-06.69a8eb0e.00000000" in results["A"].findings[0].message


def test_a_terms_snapshot_replaced_in_the_store_fails_gate_b(repo: Path) -> None:
    terms = sha256_digest((repo / "upstream" / SLUG / "TERMS.txt").read_bytes())
    overwrite(store_of(repo), terms, b"All rights reserved.\n")
    results = gate(repo, GAP_FILLED)
    assert failed(results) == ["B"]
    f = one(results["B"], "HASH_MISMATCH")
    assert f.message == f"the terms snapshot {terms} does not hash to its name in the store {store_of(repo).url}"
    assert f.location is not None and f.location.path.startswith(f"data/raw/{SLUG}/2023-03.")
    assert f.hint is not None and "kfm store pull" in f.hint


def test_a_terms_snapshot_missing_from_the_store_fails_gate_b_and_the_catalog_link_to_it(repo: Path) -> None:
    terms = sha256_digest((repo / "upstream" / SLUG / "TERMS.txt").read_bytes())
    path = store_of(repo).local_path(terms)
    assert path is not None
    path.unlink()
    results = gate(repo, GAP_FILLED)
    # The PROV record names the snapshot as an entity the run used: gate D finds its link dangling too.
    assert failed(results) == ["B", "D"]
    f = one(results["B"], "OBJECT_MISSING")
    assert f.message == (f"1 object(s) named by 1 acquisition manifest are not in the store {store_of(repo).url} "
                         f"(the first: the terms snapshot {terms})")
    assert f.hint is not None and "kfm store pull" in f.hint
    assert {x.code for x in results["D"].findings} == {"LINK_UNRESOLVED"}


def test_a_label_kfm_yaml_no_longer_knows_fails_gate_c(repo: Path) -> None:
    kfm_yaml = repo / "kfm.yaml"
    kfm_yaml.write_text(kfm_yaml.read_text().replace("policy_labels: [public, ", "policy_labels: ["))
    results = gate(repo, GAP_FILLED)
    assert failed(results) == ["C"]
    assert codes(results["C"]) == ["POLICY_DENIED", "POLICY_LABEL_UNKNOWN"]
    f = one(results["C"], "POLICY_LABEL_UNKNOWN")
    assert f.message == "the version is labelled 'public', which kfm.yaml's policy_labels do not know (an unknown " \
                        "label is denied)"
    assert f.hint is not None and "vocabularies.policy_labels" in f.hint
    assert "UNKNOWN_LABEL" in one(results["C"], "POLICY_DENIED").message


def test_a_dangling_stac_link_fails_gate_d(repo: Path) -> None:
    collection = folder(repo, GAP_FILLED) / "catalog" / "stac" / "collection.json"
    doc = json.loads(collection.read_text())
    k = next(i for i, link in enumerate(doc["links"]) if link["href"] == "./items/2023-03.json")
    edit(collection, lambda d: d["links"][k].update(href="./items/2099-01.json"))
    commit(repo, "a link edited")
    results = gate(repo, GAP_FILLED)
    assert failed(results) == ["D"]
    f = next(f for f in results["D"].findings if f.code == "LINK_UNRESOLVED")
    assert f.message == f"#/links/{k}/href: ./items/2099-01.json: no such file in the repository"
    assert "CATALOG_ALTERED" in codes(results["D"])  # and the file is not the one the manifest lists


def test_a_missing_qa_report_fails_gate_e(repo: Path) -> None:
    runs = json.loads((folder(repo, GAP_FILLED) / "runs.json").read_text())["runs"]
    report = repo / runs[0]["receipt"].replace("receipt.json", "qa.json")
    report.unlink()
    commit(repo, "a QA report deleted")
    results = gate(repo, GAP_FILLED)
    assert failed(results) == ["E"]
    f = one(results["E"], "QA_REPORT_MISSING")
    assert f.message == f"the run {runs[0]['run_id']} of chunk 2023-03 has no QA report"
    assert f.hint is not None and "kfm backfill run PLAN --chunk 2023-03 --force" in f.hint
    assert str(f.location) == report.relative_to(repo).as_posix()


def test_a_deleted_receipt_fails_gate_f(repo: Path) -> None:
    """A committed receipt deleted in the working tree (one of an earlier version's runs): gate F refuses the
    altered evidence, and says how to restore it."""
    runs = json.loads((folder(repo, GENERALISED) / "runs.json").read_text())["runs"]
    (repo / runs[0]["receipt"]).unlink()
    results = gate(repo, GAP_FILLED)
    assert failed(results) == ["F"]
    f = one(results["F"], "EVIDENCE_ALTERED")
    assert f.message == f"{runs[0]['receipt']} is committed evidence and differs from HEAD"
    assert f.hint == f"evidence is append-only: restore it with `git checkout HEAD -- {runs[0]['receipt']}`"


def test_a_deleted_receipt_of_the_version_fails_gate_f_and_the_gates_that_read_it(repo: Path) -> None:
    runs = json.loads((folder(repo, GAP_FILLED) / "runs.json").read_text())["runs"]
    (repo / runs[0]["receipt"]).unlink()
    commit(repo, "a receipt deleted")
    results = gate(repo, GAP_FILLED)
    f = one(results["F"], "RECEIPT_MISSING")
    assert f.message == f"the run {runs[0]['run_id']} of chunk 2023-03 has no receipt"
    assert f.hint is not None and "receipts are never optional" in f.hint
    # The gates that read the receipt cannot check what it records: each fails closed, naming gate F.
    assert failed(results) == ["B", "C", "D", "F", "G"]
    for g in "BCG":
        assert all(x.hint == "gate F says what is missing; fix that first" for x in results[g].findings), \
            [x.text() for x in results[g].findings]


def test_a_manifest_entry_removed_fails_gate_g(repo: Path) -> None:
    edit(folder(repo, GAP_FILLED) / "promotion-manifest.json", lambda d: d["artifacts"].pop(2))
    commit(repo, "a manifest entry removed")
    results = gate(repo, GAP_FILLED)
    assert failed(results) == ["G"]
    assert codes(results["G"]) == ["MANIFEST_ALTERED", "MANIFEST_INCOMPLETE"]
    assert "partition 2023-03 has no entry in artifacts" in one(results["G"], "MANIFEST_INCOMPLETE").message
    assert one(results["G"], "MANIFEST_ALTERED").hint == \
        f"committed evidence is never edited: restore it from git (`git checkout HEAD -- releases/{SLUG}/" \
        f"{GAP_FILLED}/promotion-manifest.json`)"


def test_a_plan_that_expects_another_version_fails_gate_g(repo: Path) -> None:
    rel = json.loads((folder(repo, GAP_FILLED) / "promotion-manifest.json").read_text())["plan"]
    text = (repo / rel).read_text().replace(GAP_FILLED, FIRST)
    (repo / rel).write_text(text)
    f = one(gate(repo, GAP_FILLED, "G")["G"], "PLAN_EXPECTS_OTHER")
    assert f.message == f"the plan expects {FIRST!r}, not {GAP_FILLED}"
    assert f.location is not None and f.location.path == rel and f.location.line is not None


# --- fail closed --------------------------------------------------------------------------------------------------


def test_a_folder_that_is_not_a_version_fails_every_gate(repo: Path) -> None:
    (folder(repo, GAP_FILLED) / "promotion-manifest.json").unlink()
    results = gate(repo, GAP_FILLED)
    assert failed(results) == list("ABCDEFG")
    assert all(codes(r) == ["FILE_NOT_FOUND"] and r.evaluated == () for r in results.values())


def test_a_gate_that_raises_fails_naming_the_exception(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kfm_gitops.gates import qa

    def broken(target: object) -> GateResult:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(qa, "check", broken)
    results = gate(repo, GAP_FILLED)
    assert failed(results) == ["E"]
    assert results["E"].findings[0].message == "gate E (qa) could not run: ZeroDivisionError: division by zero"


def test_no_store_fails_the_gates_that_need_one(repo: Path) -> None:
    results = {r.gate: r for r in run_gates(config_of(repo), folder(repo, GAP_FILLED), None)}
    assert {"A", "B"} <= set(failed(results))
    assert codes(results["A"]) == ["STORE_UNREACHABLE"]
    results = {r.gate: r for r in run_gates(config_of(repo), folder(repo, GAP_FILLED),
                                            Store(str(repo / "nowhere")), gates="A")}
    assert one(results["A"], "STORE_UNREACHABLE").message.endswith(f"there is no store at {repo / 'nowhere'}")


def test_evaluating_nothing_is_a_failure() -> None:
    from kfm_gitops.gates.model import verdict

    r = verdict("C", (), ())
    assert r.status == "failed" and r.findings[0].code == "GATE_NOTHING_EVALUATED"
    assert verdict("C", ("something",), ()).status == "passed"


# --- on a release: approvals, the ledger's chain, the promotion rules ----------------------------------------------


def entry(version: str, event: str = "promotion", supersedes: str | None = None) -> dict[str, Any]:
    return {
        "event_type": event, "status": "published", "principal": "rm-lee", "role": "release_manager",
        "created_at": "2023-07-06T12:00:00Z", "subject": {"dataset_version_id": version, "evidence_commit": "a" * 40},
        "receipts": [], "gates": {g: "passed" for g in "ABCDEFG"}, "policy_decision_id": None, "approvals": [],
        "alias_previous": None, "supersedes": supersedes, "reason": "",
    }


def ledger(*entries: dict[str, Any]) -> bytes:
    data = b""
    for e in entries:
        data += new_line(e, head_of(data, LEDGER))
    return data


def release(root: Path, version: str, published_now: str, data: bytes = b"", reason: str = "",
            approvals: tuple[Approval, ...] = (Approval("steward", "steward-kim", "trailer x"),)) -> ReleaseContext:
    manifest = (folder(root, version) / "promotion-manifest.json").read_bytes()
    head = git(root, "rev-parse", "HEAD").strip()
    return ReleaseContext(SLUG, version, head, sha256_digest(manifest), reason, published_now, data, LEDGER,
                          approvals)


@pytest.fixture
def stewarded(repo: Path) -> Path:
    """The example with steward-kim and release-lee holding the steward role."""
    import re

    kfm_yaml = repo / "kfm.yaml"
    text = re.sub(r"(?m)^  steward: \[.*\]$", "  steward: [steward-kim, release-lee]", kfm_yaml.read_text())
    kfm_yaml.write_text(text)
    return repo


def test_a_forward_promotion_on_what_is_published_passes(stewarded: Path) -> None:
    ctx = release(stewarded, GAP_FILLED, FIRST, ledger(entry(FIRST)))
    results = gate(stewarded, GAP_FILLED, release=ctx)
    assert failed(results) == [], {g: [f.text() for f in r.findings] for g, r in results.items()}
    assert "ledger chain releases/ks_storm_reports/ledger.jsonl: 1 entry" in results["F"].evaluated
    assert f"promotion rules for {SLUG} -> {GAP_FILLED}" in results["G"].evaluated


def test_a_stale_base_fails_gate_g(stewarded: Path) -> None:
    ctx = release(stewarded, GAP_FILLED, GENERALISED, ledger(entry(FIRST), entry(GENERALISED)))
    f = one(gate(stewarded, GAP_FILLED, "G", release=ctx)["G"], "STALE_BASE")
    assert f.message == f"{GAP_FILLED} builds on {FIRST}, but {GENERALISED} is published now: promoting it would " \
                        "silently drop what was published since"


def test_a_rollback_goes_only_to_a_version_published_before(stewarded: Path) -> None:
    # FIRST builds on nothing; published before, it is a rollback target.
    data = ledger(entry(FIRST), entry(GAP_FILLED))
    assert failed(gate(stewarded, FIRST, "G", release=release(stewarded, FIRST, GAP_FILLED, data))) == []
    # Never published: it is a forward promotion whose base is not what is published.
    f = one(gate(stewarded, FIRST, "G", release=release(stewarded, FIRST, GAP_FILLED, ledger(entry(GAP_FILLED))))[
        "G"], "STALE_BASE")
    assert f.message.startswith(f"{FIRST} builds on nothing, but {GAP_FILLED} is published now")


def test_a_rolled_back_version_returns_only_with_a_republish_reason(stewarded: Path) -> None:
    data = ledger(entry(FIRST), entry(GAP_FILLED), entry(FIRST, "rollback", supersedes=GAP_FILLED))
    f = one(gate(stewarded, GAP_FILLED, "G", release=release(stewarded, GAP_FILLED, FIRST, data))["G"],
            "REPUBLISH_REASON_MISSING")
    assert f.hint == 'propose it with --reason "republish: why it is safe again"'
    ok = release(stewarded, GAP_FILLED, FIRST, data, reason="republish: the upstream fixed March")
    assert failed(gate(stewarded, GAP_FILLED, "G", release=ok)) == []


def test_a_pointer_with_another_manifest_digest_fails_gate_g(stewarded: Path) -> None:
    ctx = release(stewarded, GAP_FILLED, FIRST, ledger(entry(FIRST)))
    from dataclasses import replace

    results = gate(stewarded, GAP_FILLED, "G", release=replace(ctx, manifest_digest="sha256:" + "1" * 64))
    assert codes(results["G"]) == ["POINTER_DIGEST"]
    results = gate(stewarded, GAP_FILLED, "G", release=replace(ctx, version_id=FIRST))
    f = one(results["G"], "POINTER_MISMATCH")
    assert f.message == f"the pointer names {SLUG} {FIRST}, not the version folder releases/{SLUG}/{GAP_FILLED}"


def test_approvals_count_only_from_the_plans_reviewers_holding_the_role(stewarded: Path) -> None:
    ctx = release(stewarded, GAP_FILLED, FIRST, ledger(entry(FIRST)), approvals=(
        Approval("steward", "mallory", "trailer a"),  # not a reviewer of the plan
        Approval("release_manager", "steward-kim", "trailer b"),  # a reviewer, approving in a role not needed
    ))
    results = gate(stewarded, GAP_FILLED, "C", release=ctx)
    assert codes(results["C"]) == ["APPROVALS_MISSING", "POLICY_DENIED"]
    f = one(results["C"], "APPROVALS_MISSING")
    assert f.message == ("label 'public' needs 1 approval(s) by steward, found 0; not counted: mallory (trailer a) "
                         "is not among the plan's reviewers; steward-kim (trailer b) does not hold the role "
                         "release_manager in kfm.yaml")
    assert f.hint == "ask 1 more of steward-kim, release-lee to approve"
    assert "APPROVALS_MISSING" in one(results["C"], "POLICY_DENIED").message


def test_a_broken_ledger_chain_fails_gate_f(stewarded: Path) -> None:
    lines = ledger(entry(FIRST), entry(GAP_FILLED)).splitlines(keepends=True)
    broken = lines[1]  # the first entry removed
    results = gate(stewarded, GAP_FILLED, "F", release=release(stewarded, GAP_FILLED, FIRST, broken))
    f = one(results["F"], "LEDGER_CHAIN")
    assert f.message == "entry 1: seq is 2, expected 1 (a line was removed, inserted or moved)"


def test_gate_release_reads_the_version_from_its_evidence_commit(stewarded: Path) -> None:
    """From another branch's working tree (release has no versions), the gates read the evidence commit."""
    git(stewarded, "commit", "-qam", "steward-kim holds the steward role")
    ctx = release(stewarded, GAP_FILLED, FIRST, ledger(entry(FIRST)))
    git(stewarded, "switch", "-q", "release")
    assert not folder(stewarded, GAP_FILLED).exists()
    results = gate_release(config_of(stewarded), ctx, store_of(stewarded))
    assert [r.status for r in results] == ["passed"] * 7, [f.text() for r in results for f in r.findings]
    assert "committed evidence" not in " ".join(results[5].evaluated)  # no working tree to compare
