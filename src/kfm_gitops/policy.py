"""Policy as code: Rego policies under ``policies/`` (packages ``kfm.processing`` and ``kfm.promotion``), default deny.

Two decision points. Processing, in WORK, before anything is published: an unknown label, a label whose required
obligations are missing, a missing or unknown licence, unknown rights, unresolved sensitivity. Promotion, at the
gates: all of those, plus the approvals the label needs and an embargo not yet over. Every evaluation is a
decision (id, input digest, policy bundle digest, outcome, deny codes) that receipts reference. No policy, no rule
evaluated, an engine error or crash: each is a deny.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from kfm_gitops.findings import Finding, Location
from kfm_gitops.identity import digest_of, sha256_digest

POINTS = ("processing", "promotion")
POLICY_DIR = "policies"
CASES_DIR = "policies/tests"
ENGINE_TIMEOUT = 60
ENGINE = (sys.executable, "-m", "kfm_gitops._rego")  # a process of its own: a crash there is a deny here


@dataclass(frozen=True, slots=True)
class Bundle:
    modules: tuple[tuple[str, str], ...]  # (repository path, source)

    @property
    def digest(self) -> str:
        return digest_of({name: sha256_digest(src.encode()) for name, src in self.modules})


@dataclass(frozen=True, slots=True)
class Decision:
    point: str
    decision_id: str
    input_digest: str
    bundle_digest: str
    allow: bool
    deny: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"decision_id": self.decision_id, "point": self.point, "input_digest": self.input_digest,
                "bundle_digest": self.bundle_digest, "outcome": "allow" if self.allow else "deny",
                "deny": list(self.deny)}


def default_files() -> dict[str, bytes]:
    """The default policies and their test cases, as `kfm init` installs them."""
    pkg = resources.files("kfm_gitops").joinpath("policies")
    out = {}
    for name in ("processing.rego", "promotion.rego"):
        out[f"{POLICY_DIR}/{name}"] = pkg.joinpath(name).read_bytes()
    for name in ("processing.cases.json", "promotion.cases.json"):
        out[f"{CASES_DIR}/{name}"] = pkg.joinpath("tests", name).read_bytes()
    return out


def load_bundle(root: Path) -> Bundle:
    folder = root / POLICY_DIR
    files = sorted(folder.glob("*.rego")) if folder.is_dir() else []
    return Bundle(tuple((p.relative_to(root).as_posix(), p.read_text(encoding="utf-8")) for p in files))


_ERROR = re.compile(r"\(error \d+:([^|]*)\|(\d+)\|(\d+)\s*\(errormsg \d+:(.*?)\)\s*\(errorast", re.S)


def _syntax_findings(bundle: Bundle, error: str) -> list[Finding]:
    sources = dict(bundle.modules)
    out = []
    for name, offset, _length, message in _ERROR.findall(error):
        src = sources.get(name, "")
        pos = int(offset)
        line = src.count("\n", 0, pos) + 1
        col = pos - (src.rfind("\n", 0, pos) + 1) + 1
        out.append(Finding("POLICY_SYNTAX", message.strip(), Location(name, line, col),
                           hint="fix the Rego at this position; `kfm policy test` checks the policies"))
    return out or [Finding("POLICY_ERROR", error.strip().splitlines()[0] if error.strip() else "the engine failed",
                           None)]


def run_engine(bundle: Bundle, point: str, inputs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]] | None, str]:
    """Evaluate inputs in a subprocess; (answers, error text). None answers: the engine failed or crashed."""
    request = {"modules": list(bundle.modules), "package": f"kfm.{point}", "cases": [{"input": i} for i in inputs]}
    try:
        done = subprocess.run(list(ENGINE), input=json.dumps(request),
                              capture_output=True, text=True, timeout=ENGINE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, f"the policy engine did not answer in {ENGINE_TIMEOUT} s"
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        return None, f"the policy engine crashed ({how}): {done.stderr.strip()[-500:]}"
    try:
        answers: list[dict[str, Any]] = json.loads(done.stdout)["answers"]
    except (ValueError, KeyError):
        return None, "the policy engine gave no answer"
    return answers, ""


def _verdict(answer: dict[str, Any]) -> tuple[bool, tuple[str, ...], str]:
    """(allow, deny codes, why): fail closed on anything but a defined, true allow with an empty deny set."""
    if not answer.get("ok"):
        return False, ("POLICY_ERROR",), str(answer.get("error", ""))
    if not answer.get("deny_defined"):
        return False, ("POLICY_NO_RULES",), "the policies define no deny rules at this decision point"
    if not answer.get("allow_defined"):
        return False, ("POLICY_NO_ALLOW",), "the policies never define allow"
    deny = answer.get("deny") or []
    if not isinstance(deny, list) or not all(isinstance(d, str) for d in deny):
        return False, ("POLICY_ERROR",), f"deny is not a set of codes: {deny!r}"
    allow = answer.get("allow") is True and not deny
    return allow, tuple(sorted(deny)), ""


def decide(root: Path, point: str, data: dict[str, Any], bundle: Bundle | None = None
           ) -> tuple[Decision, list[Finding]]:
    """One decision; findings say why it could not be made (and then it is a deny)."""
    bundle = bundle or load_bundle(root)
    input_digest = digest_of(data)
    decision_id = "kfm://policy_decision/" + digest_of({"point": point, "input": input_digest,
                                                       "bundle": bundle.digest})[7:23]

    def made(allow: bool, deny: tuple[str, ...]) -> Decision:
        return Decision(point, decision_id, input_digest, bundle.digest, allow, deny)

    if not bundle.modules:
        return made(False, ("POLICY_NO_RULES",)), [Finding("POLICY_EMPTY", f"no policies in {POLICY_DIR}/: "
                                                           "nothing may pass", None,
                                                           hint="`kfm init` installs the default policies")]
    answers, error = run_engine(bundle, point, [data])
    if answers is None:
        return made(False, ("POLICY_ERROR",)), [Finding("POLICY_ENGINE", error, None)]
    allow, deny, why = _verdict(answers[0])
    findings = []
    if "POLICY_ERROR" in deny:
        findings = _syntax_findings(bundle, why)
    elif why:
        findings = [Finding(deny[0], why, None)]
    return made(allow, deny), findings


def test_policies(root: Path) -> tuple[list[str], list[Finding]]:
    """`kfm policy test`: every case under policies/tests/, each on a fresh interpreter, in a subprocess."""
    bundle = load_bundle(root)
    checked: list[str] = []
    findings: list[Finding] = []
    if not bundle.modules:
        return checked, [Finding("POLICY_EMPTY", f"no policies in {POLICY_DIR}/", Location(POLICY_DIR),
                                 hint="`kfm init` installs the default policies")]
    case_files = sorted((root / CASES_DIR).glob("*.cases.json")) if (root / CASES_DIR).is_dir() else []
    if not case_files:
        return checked, [Finding("POLICY_NO_TESTS", f"no test cases in {CASES_DIR}/: untested policies fail",
                                 Location(CASES_DIR))]
    for path in case_files:
        shown = path.relative_to(root).as_posix()
        try:
            cases = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            findings.append(Finding("POLICY_CASES_INVALID", f"not JSON: {exc}", Location(shown)))
            continue
        if not isinstance(cases, list) or not cases:
            findings.append(Finding("POLICY_CASES_INVALID", "a cases file is a non-empty list", Location(shown)))
            continue
        for point in POINTS:
            mine = [(i, c) for i, c in enumerate(cases) if isinstance(c, dict) and c.get("point") == point]
            if not mine:
                continue
            answers, error = run_engine(bundle, point, [c.get("input", {}) for _, c in mine])
            if answers is None:
                findings.append(Finding("POLICY_ENGINE", error, Location(shown)))
                continue
            for (i, case), answer in zip(mine, answers, strict=True):
                name = f"{shown}#{case.get('name', i)}"
                checked.append(name)
                allow, deny, why = _verdict(answer)
                if "POLICY_ERROR" in deny:
                    findings.extend(_syntax_findings(bundle, why))
                    break
                expected = sorted(case.get("deny", []))
                if list(deny) != expected:
                    findings.append(Finding("POLICY_TEST_FAILED", f"{case.get('name', i)}: expected deny "
                                            f"{expected}, got {list(deny)}", Location(shown)))
                elif allow != (not expected):
                    findings.append(Finding("POLICY_TEST_FAILED", f"{case.get('name', i)}: allow is {allow}",
                                            Location(shown)))
        unknown = [c for c in cases if not isinstance(c, dict) or c.get("point") not in POINTS]
        for c in unknown:
            findings.append(Finding("POLICY_CASES_INVALID", f"a case without a known point: {c!r:.80}",
                                    Location(shown)))
    unique: list[Finding] = []
    for f in findings:
        if f not in unique:
            unique.append(f)
    return checked, unique
