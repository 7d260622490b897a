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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from kfm_gitops.config import OBLIGATION_ALIASES
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
    # Policy files that are not readable UTF-8 text: a bundle with problems is never evaluated, it denies.
    problems: tuple[Finding, ...] = ()

    @property
    def digest(self) -> str:
        # A file that is not UTF-8 is held as surrogate escapes, so that its digest is that of its bytes.
        modules = {name: sha256_digest(src.encode("utf-8", "surrogateescape")) for name, src in self.modules}
        if not self.problems:
            return digest_of(modules)
        return digest_of({"modules": modules, "problems": [f.text() for f in self.problems]})


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


def _byte_location(shown: str, data: bytes, offset: int) -> Location:
    """The line and column (in characters) of a byte offset into a file's bytes."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    return Location(shown, data.count(b"\n", 0, offset) + 1,
                    len(data[line_start:offset].decode("utf-8", "replace")) + 1)


def _read_text(path: Path, shown: str) -> tuple[str | None, Finding | None]:
    """A file's text as ``Path.read_text`` gives it (UTF-8, universal newlines), or why it cannot be had: an
    unreadable file (no text), or one that is not UTF-8 (its text with surrogate escapes, and the first bad byte)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, Finding("POLICY_UNREADABLE", f"cannot be read: {exc.strerror or exc}", Location(shown))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = _byte_location(shown, data, exc.start)
        return data.decode("utf-8", "surrogateescape"), Finding(
            "POLICY_ENCODING", f"not UTF-8: byte 0x{data[exc.start]:02x} cannot be decoded ({exc.reason})", where,
            hint="save the file as UTF-8")
    return text.replace("\r\n", "\n").replace("\r", "\n"), None


def load_bundle(root: Path) -> Bundle:
    folder = root / POLICY_DIR
    files = sorted(folder.glob("*.rego")) if folder.is_dir() else []
    modules: list[tuple[str, str]] = []
    problems: list[Finding] = []
    for path in files:
        shown = path.relative_to(root).as_posix()
        source, problem = _read_text(path, shown)
        if source is not None:
            modules.append((shown, source))
        if problem is not None:
            problems.append(problem)
    return Bundle(tuple(modules), tuple(problems))


_SYNTAX_HINT = "fix the Rego at this position; `kfm policy test` checks the policies"
# A package's modules compile together: the conflicting declaration may be in another file of the package.
_COMPILE_HINT = "fix the Rego here or in another file of the same package; `kfm policy test` checks the policies"
# The engine's error terms: `(error ... (errormsg N:message) (errorast ...))`, strings prefixed by their length; a
# position is `N:module|offset|length`, the offset counted in bytes.
_ERROR_TERM = re.compile(r"\(error(?=\s)")
_ERROR_MESSAGE = re.compile(r"\(errormsg (\d+):")
_LENGTH_PREFIX = re.compile(r"(?<![\w.|:])(\d+):")
_OFFSET = re.compile(r"\|(\d+)\|\d+")
_DECORATION = frozenset("~^-=*| ")


def _one_line(text: str, limit: int = 300) -> str:
    """The last meaningful line of an error text: a traceback's exception, an engine report's last word. Never the
    traceback itself, nor the underlines and rules that decorate a report."""
    lines = [line.strip() for line in text.splitlines()]
    meaningful = [line for line in lines if line and not set(line) <= _DECORATION]
    line = meaningful[-1] if meaningful else ""
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _engine_errors(text: str, sources: dict[str, str]) -> list[tuple[str, str | None, int]]:
    """(message, module, byte offset) of each error in the engine's error terms; module None when no position in
    the error names one of ours."""
    out: list[tuple[str, str | None, int]] = []
    pos = 0
    while (start := _ERROR_TERM.search(text, pos)) is not None:
        msg = _ERROR_MESSAGE.search(text, start.end())
        if msg is None:
            break
        size = int(msg.group(1))
        message = text[msg.end():msg.end() + size]
        pos = msg.end() + size
        following = _ERROR_TERM.search(text, pos)
        # The position is in the error's head (a parse error) or in its AST (a compile error).
        span = text[start.end():msg.start()] + " " + text[pos:following.start() if following else len(text)]
        module: str | None = None
        offset = 0
        for prefix in _LENGTH_PREFIX.finditer(span):
            name = span[prefix.end():prefix.end() + int(prefix.group(1))]
            at = _OFFSET.match(span, prefix.end() + len(name))
            if name in sources and at is not None:
                module, offset = name, int(at.group(1))
                break
        out.append((message, module, offset))
    return out


def _engine_findings(bundle: Bundle, answer: dict[str, Any]) -> list[Finding]:
    """The findings for an answer the engine could not give: each error at its module, line and column."""
    error = str(answer.get("error", ""))
    code = "POLICY_SYNTAX" if answer.get("stage") == "load" else "POLICY_ERROR"
    sources = dict(bundle.modules)
    errors = _engine_errors(error, sources)

    def echoed(message: str, module: str | None, offset: int) -> bool:
        # The parser reports an unclosed bracket a second time at the `package` keyword, as if the file's top level
        # were unclosed too: keep that one only when nothing else in the file says so.
        return (module is not None and sources[module].encode("utf-8", "surrogateescape").startswith(b"package", offset)
                and any(m == message and n == module and o != offset for m, n, o in errors))

    out: list[Finding] = []
    for message, module, offset in errors:
        if echoed(message, module, offset):
            continue
        where = (_byte_location(module, sources[module].encode("utf-8", "surrogateescape"), offset)
                 if module is not None else None)
        hint = (_SYNTAX_HINT if code == "POLICY_SYNTAX" else _COMPILE_HINT) if where else None
        finding = Finding(code, _one_line(message) or "the policy engine failed", where, hint=hint)
        if finding not in out:
            out.append(finding)
    return out or [Finding("POLICY_ERROR", _one_line(error) or "the policy engine failed without saying why")]


def run_engine(bundle: Bundle, point: str, inputs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]] | None, str]:
    """Evaluate inputs in a subprocess; (answers, error text). None answers: the engine failed or crashed."""
    request = {"modules": list(bundle.modules), "package": f"kfm.{point}", "cases": [{"input": i} for i in inputs]}
    try:
        done = subprocess.run(list(ENGINE), input=json.dumps(request), capture_output=True, text=True,
                              errors="replace", timeout=ENGINE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, f"the policy engine did not answer in {ENGINE_TIMEOUT} s"
    except OSError as exc:
        return None, f"the policy engine could not start: {exc.strerror or exc}"
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        # Whatever the process printed (a traceback, the engine's report) is for --debug; a finding keeps one line.
        last = _one_line(done.stderr)
        return None, f"the policy engine crashed ({how})" + (f": {last}" if last else "")
    try:
        answers = json.loads(done.stdout)["answers"]
    except (ValueError, KeyError, TypeError):
        return None, "the policy engine gave no answer"
    if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
        return None, "the policy engine gave no answer"
    if len(answers) != len(inputs):
        return None, f"the policy engine gave {len(answers)} answer(s) for {len(inputs)} input(s)"
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
        return False, ("POLICY_ERROR",), f"deny is not a set of codes: {deny!r:.200}"
    allow = answer.get("allow") is True and not deny
    if not allow and not deny:  # default deny (no rule denied, none allowed): a code, or the refusal names no cause
        return False, ("POLICY_NOT_ALLOWED",), ""
    return allow, tuple(sorted(deny)), ""


def decision_input(labels: Sequence[str], label: str, obligations: Sequence[Mapping[str, Any]],
                   licence: Mapping[str, Any] | None, terms_digest: str | None) -> dict[str, Any]:
    """What the policies decide on at both points: the label and its vocabulary, the obligations' types, the
    licence and the terms snapshot (promotion adds approvals and the embargo)."""
    return {
        "label": label,
        "vocabulary": {"labels": list(labels)},
        "obligations": sorted({normalized(dict(o))["type"] for o in obligations}),
        "license": {k: v for k, v in licence.items() if k in ("spdx", "url")} if licence else None,
        "terms": {"digest": terms_digest} if terms_digest else None,
    }


def decide(root: Path, point: str, data: dict[str, Any], bundle: Bundle | None = None
           ) -> tuple[Decision, list[Finding]]:
    """One decision; findings say why it could not be made (and then it is a deny)."""
    bundle = bundle or load_bundle(root)
    input_digest = digest_of(data)
    decision_id = "kfm://policy_decision/" + digest_of({"point": point, "input": input_digest,
                                                       "bundle": bundle.digest})[7:23]

    def made(allow: bool, deny: tuple[str, ...]) -> Decision:
        return Decision(point, decision_id, input_digest, bundle.digest, allow, deny)

    if bundle.problems:
        return made(False, ("POLICY_ERROR",)), list(bundle.problems)
    if not bundle.modules:
        return made(False, ("POLICY_NO_RULES",)), [Finding("POLICY_EMPTY", f"no policies in {POLICY_DIR}/: "
                                                           "nothing may pass", None,
                                                           hint="`kfm init` installs the default policies")]
    answers, error = run_engine(bundle, point, [data])
    if answers is None:
        return made(False, ("POLICY_ERROR",)), [Finding("POLICY_ENGINE", error, None)]
    allow, deny, why = _verdict(answers[0])
    findings = []
    if not answers[0].get("ok"):
        findings = _engine_findings(bundle, answers[0])
    elif why:
        findings = [Finding(deny[0], why, None)]
    return made(allow, deny), findings


def test_policies(root: Path) -> tuple[list[str], list[Finding]]:
    """`kfm policy test`: every case under policies/tests/, each on a fresh interpreter, in a subprocess."""
    bundle = load_bundle(root)
    checked: list[str] = []
    findings: list[Finding] = []
    if bundle.problems:
        return checked, list(bundle.problems)
    if not bundle.modules:
        return checked, [Finding("POLICY_EMPTY", f"no policies in {POLICY_DIR}/", Location(POLICY_DIR),
                                 hint="`kfm init` installs the default policies")]
    case_files = sorted((root / CASES_DIR).glob("*.cases.json")) if (root / CASES_DIR).is_dir() else []
    if not case_files:
        return checked, [Finding("POLICY_NO_TESTS", f"no test cases in {CASES_DIR}/: untested policies fail",
                                 Location(CASES_DIR))]
    for path in case_files:
        shown = path.relative_to(root).as_posix()
        text, problem = _read_text(path, shown)
        if text is None or problem is not None:
            findings.append(replace(problem, code="POLICY_CASES_INVALID") if problem else
                            Finding("POLICY_CASES_INVALID", "cannot be read", Location(shown)))
            continue
        try:
            cases = json.loads(text)
        except json.JSONDecodeError as exc:
            findings.append(Finding("POLICY_CASES_INVALID", f"not JSON: {exc.msg}",
                                    Location(shown, exc.lineno, exc.colno)))
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
                if not answer.get("ok"):
                    # The policies cannot be evaluated at all: one report, not one per case.
                    findings.extend(_engine_findings(bundle, answer))
                    break
                checked.append(f"{shown}#{case.get('name', i)}")
                allow, deny, why = _verdict(answer)
                if "POLICY_ERROR" in deny and why:
                    findings.append(Finding("POLICY_ERROR", why, Location(shown)))
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


# --- obligations: which kfm applies, and whether a dataset's data can take them ------------------------------------

RECORD_ONLY = ("require_attribution", "show_notice", "deny_asset_links")
_KM_PER_DEGREE = 111.32


def normalized(ob: dict[str, Any]) -> dict[str, Any]:
    return {**ob, "type": OBLIGATION_ALIASES.get(ob["type"], ob["type"])}


def grid_cell(method: str) -> float:
    """grid_aggregation_<n>[deg|km|m] as a cell size in degrees (km and m converted at the equator)."""
    m = re.fullmatch(r"grid_aggregation_([0-9]+(?:\.[0-9]+)?)(deg|km|m)?", method)
    if not m:
        raise ValueError(method)
    size = float(m.group(1))
    unit = m.group(2) or "deg"
    return size if unit == "deg" else size / _KM_PER_DEGREE if unit == "km" else size / 1000 / _KM_PER_DEGREE


def dataset_columns(dataset: dict[str, Any]) -> tuple[list[str], tuple[str, ...], tuple[str, ...], int | None]:
    """From a dataset contract: its declared columns, the columns no obligation may remove (the id and the time
    axes'), its geometry types, and the decimals its coordinates may have (None: not declared)."""
    schema = dataset["schema"]
    protected = (schema["id_column"], *[c for spec in dataset["time_axes"].values() for c in spec.values()])
    geometry = schema["geometry"]
    return ([c["name"] for c in schema["columns"]], protected, tuple(geometry.get("types", ())),
            geometry.get("max_decimals"))


MAX_DECIMALS = 15  # what a double holds of a longitude's decimals, at most


def param_problems(ob: dict[str, Any], max_decimals: int | None = None) -> list[tuple[str, Finding]]:
    """Parameters of one obligation (normalised) that would do nothing, each with the parameter's key: a rounding
    finer than coordinates can be, or than the contract already allows; a grid cell of 0; a minimum count of 1."""
    params = ob.get("params", {})
    out: list[tuple[str, Finding]] = []
    method = str(params.get("method", ""))
    m = re.fullmatch(r"round_([0-9]+)_decimals", method) if ob["type"] == "generalize_geometry" else None
    if m and int(m.group(1)) > MAX_DECIMALS:
        out.append(("method", Finding("OBLIGATION_INAPPLICABLE", f"{method}: coordinates carry at most "
                                      f"{MAX_DECIMALS} decimals, so rounding to {int(m.group(1))} changes nothing",
                                      None, hint="round_<n>_decimals takes n from 0 to 15; round_1_decimals is "
                                      "about 11 km")))
    elif m and max_decimals is not None and int(m.group(1)) >= max_decimals:
        out.append(("method", Finding("OBLIGATION_INAPPLICABLE", f"{method} changes nothing: the contract's "
                                      f"coordinates have at most {max_decimals} decimals already", None,
                                      hint=f"round to fewer than {max_decimals} decimals")))
    if ob["type"] == "generalize_geometry" and method.startswith("grid_aggregation_"):
        try:
            if grid_cell(method) <= 0:
                out.append(("method", Finding("OBLIGATION_INAPPLICABLE", f"{method}: a cell of size 0 "
                                              "generalises nothing", None, hint="e.g. grid_aggregation_10km")))
        except ValueError:
            pass  # obligation_problems says the cell is bad
    if ob["type"] == "min_count_threshold" and params.get("min_count") == 1:
        out.append(("min_count", Finding("OBLIGATION_INAPPLICABLE", "min_count_threshold with min_count 1 "
                                         "suppresses nothing: every group has a row", None,
                                         hint="the smallest group to publish, e.g. min_count: 3")))
    return out


def obligation_problems(items: list[dict[str, Any]], columns: list[str], protected: tuple[str, ...],
                        geometry_types: tuple[str, ...] = (), max_decimals: int | None = None) -> list[Finding]:
    """Why obligations (normalised) cannot be applied to a dataset with these columns, protected (id and time-axis)
    columns and geometry types: an obligation kfm does not apply is never pretended applied. Plan checks use it at
    the plan's lines, the chunk pipeline before it reads a row."""
    findings: list[Finding] = []
    applied = ("remove_attributes", "generalize_geometry", "min_count_threshold", *RECORD_ONLY)
    removed: list[str] = []
    method: str | None = None
    for ob in items:
        params = ob.get("params", {})
        findings.extend(f for _, f in param_problems(ob, max_decimals))
        if ob["type"] not in applied:
            # A type kfm.yaml adds to the vocabulary but no code applies.
            findings.append(Finding("OBLIGATION_INAPPLICABLE", f"kfm cannot apply obligations of type "
                                    f"{ob['type']!r}", None, hint=f"kfm applies: {', '.join(applied)}"))
        elif ob["type"] == "remove_attributes":
            for name in params.get("fields", []):
                if name in protected:
                    findings.append(Finding("OBLIGATION_INAPPLICABLE", f"remove_attributes cannot remove {name}: "
                                            "the id and time-axis columns identify and partition the data", None))
                elif name not in columns:
                    findings.append(Finding("OBLIGATION_INAPPLICABLE", f"remove_attributes names {name!r}, which "
                                            "the contract does not declare", None,
                                            hint=f"declared columns: {', '.join(columns)}"))
                else:
                    removed.append(name)
        elif ob["type"] == "generalize_geometry":
            new = str(params.get("method", ""))
            if method is not None and method != new:
                findings.append(Finding("OBLIGATION_INAPPLICABLE", f"two geometry generalisations: {method} "
                                        f"and {new}", None, hint="keep the stricter one"))
            method = new
            if new in ("centroid_only", "bounding_box_only") and geometry_types and set(geometry_types) <= {"Point"}:
                findings.append(Finding("OBLIGATION_INAPPLICABLE", f"{new} leaves a point where it is: it "
                                        "does not generalise a dataset of points", None,
                                        hint="use round_<n>_decimals or grid_aggregation_<cell>"))
            if new.startswith("grid_aggregation_"):
                try:
                    grid_cell(new)
                except ValueError:
                    findings.append(Finding("OBLIGATION_INAPPLICABLE", f"bad grid cell in {new}", None))
        elif ob["type"] == "min_count_threshold":
            missing = [g for g in params.get("group_by", []) if g not in columns or g in removed]
            if missing:
                findings.append(Finding("OBLIGATION_INAPPLICABLE", f"min_count_threshold groups by {missing}, "
                                        "which the output does not have", None))
    return findings
