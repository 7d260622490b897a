"""Run receipts: what one run did, with what inputs and outputs, in which environment, and how it validated.

A receipt is written as canonical JSON (RFC 8785), so the digest of the file is the digest of the receipt. The
environment is recorded from an allowlist only: no other environment value is ever written.
"""

from __future__ import annotations

import os
import platform
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from kfm_gitops import __version__
from kfm_gitops.findings import Finding
from kfm_gitops.identity import canonical_json, check_digest, digest_of, run_id, sha256_digest

RECEIPT_FILE = "receipt.json"

# The only environment variables a receipt may carry (CI provenance). Anything else, secrets included, never is.
ENV_ALLOWLIST = ("CI", "GITHUB_ACTIONS", "GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_SHA",
                 "GITHUB_REF", "GITHUB_WORKFLOW", "GITHUB_JOB")
CONTAINER_ENV = "KFM_CONTAINER_DIGEST"
# Packages whose versions change bytes kfm writes, recorded by name beside the digest of the whole set.
KEY_DEPENDENCIES = ("kfm-gitops", "pyarrow", "shapely", "rfc8785", "pyyaml", "ruamel.yaml", "jsonschema", "pystac",
                    "rdflib", "tzdata")


@cache
def dependency_set() -> tuple[str, dict[str, str]]:
    """(digest of every installed distribution as name==version, the versions of the key ones)."""
    from importlib.metadata import distributions

    pairs = sorted({f"{(d.metadata['Name'] or '').lower()}=={d.version}" for d in distributions()
                    if d.metadata["Name"]})
    versions = {p.split("==")[0]: p.split("==")[1] for p in pairs}
    key = {name: versions[name] for name in KEY_DEPENDENCIES if name in versions}
    return digest_of(pairs), key


def container_digest(given: str | None = None) -> str | None:
    """The container image digest runs record (given, else $KFM_CONTAINER_DIGEST); a malformed one stops the
    run before it writes anything."""
    container = given or os.environ.get(CONTAINER_ENV) or None
    if container is not None:
        from kfm_gitops.errors import KfmError
        from kfm_gitops.identity import IdentityError

        try:
            check_digest(container)
        except IdentityError as exc:
            raise KfmError(f"{CONTAINER_ENV}: {exc}", hint="set it to the image digest, sha256:<64 hex>") from exc
    return container


def environment(git_commit: str, params_digest: str, container: str | None = None) -> dict[str, Any]:
    deps_digest, key = dependency_set()
    container = container_digest(container)
    env: dict[str, Any] = {
        "git_commit": git_commit,
        "params_digest": check_digest(params_digest),
        "container_digest": container,
        "tool_version": f"kfm-gitops {__version__}",
        "dependencies_digest": deps_digest,
        "dependencies": key,
        "python": platform.python_version(),
    }
    ci = {k: os.environ[k] for k in ENV_ALLOWLIST if k in os.environ}
    if ci:
        env["ci"] = ci
    return env


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def new_run_id(chunk_key: str, when: datetime | None = None) -> str:
    t = (when or now_utc()).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return run_id(t, chunk_key, secrets.token_hex(4))


def run_folder_name(rid: str) -> str:
    return rid.removeprefix("kfm://run/")


def findings_report(findings: Sequence[Finding], root: Path) -> tuple[str, list[dict[str, object]]]:
    """The digest and content of a validation report made of findings, their paths relative to the repository
    ``root`` (as shown, they are relative to where kfm ran, which must not reach a committed receipt)."""
    items = []
    for f in findings:
        item = f.as_dict()
        if isinstance(item.get("path"), str):
            item["path"] = repository_path(str(item["path"]), root)
        items.append(item)
    return digest_of(items), items


def repository_path(shown: str, root: Path) -> str:
    """A path as shown to the user, relative to the repository when it lies inside it."""
    try:
        full = (Path.cwd() / shown).resolve()
        return full.relative_to(root.resolve()).as_posix()
    except (ValueError, OSError):
        return shown if not os.path.isabs(shown) else Path(shown).name


@dataclass(frozen=True, slots=True)
class Receipt:
    data: dict[str, Any]

    @property
    def bytes(self) -> bytes:
        return canonical_json(self.data)

    @property
    def digest(self) -> str:
        return sha256_digest(self.bytes)

    @property
    def run_id(self) -> str:
        return str(self.data["run_id"])


def make_receipt(*, root: Path, rid: str, slug: str, actor: Mapping[str, str], operation: str,
                 inputs: Sequence[Mapping[str, str]],
                 outputs: Sequence[Mapping[str, str]], env: Mapping[str, Any], findings: Sequence[Finding],
                 chunk: Mapping[str, str] | None = None, dataset_version_id: str | None = None,
                 plan: str | None = None, decision_id: str | None = None,
                 obligations_applied: Sequence[Mapping[str, Any]] = (), created_at: datetime | None = None,
                 transforms_applied: Sequence[Mapping[str, Any]] = ()) -> Receipt:
    from kfm_gitops.errors import InternalError
    from kfm_gitops.periods import iso_utc
    from kfm_gitops.schema import validate_data

    report_digest, items = findings_report(findings, root)
    errors = [f for f in findings if f.severity == "error"]
    status = "fail" if errors else ("warn" if findings else "pass")
    data: dict[str, Any] = {
        "kfm_run_receipt_version": "v1",
        "run_id": rid,
        "dataset_slug": slug,
        "actor": dict(actor),
        "operation": operation,
        "inputs": [dict(i) for i in inputs],
        "outputs": [dict(o) for o in outputs],
        "environment": dict(env),
        "validation": {"status": status, "report_digest": report_digest, "findings": items},
        "policy": {"decision_id": decision_id},
        "obligations_applied": [dict(o) for o in obligations_applied],
        "created_at": iso_utc(created_at or now_utc()),
    }
    if chunk is not None:
        data["chunk"] = dict(chunk)
    if dataset_version_id is not None:
        data["dataset_version_id"] = dataset_version_id
    if plan is not None:
        data["plan"] = plan
    if transforms_applied:
        data["transforms_applied"] = [dict(t) for t in transforms_applied]
    problems = validate_data(data, "receipt")
    if problems:
        raise InternalError(f"kfm made a receipt that fails its own schema: {problems[0]}")
    return Receipt(data)


def read_receipt(path: Path) -> Receipt | list[Finding]:
    """A committed receipt, checked against its schema and for canonical form."""
    import json

    from kfm_gitops._fs import display_path, read_text
    from kfm_gitops.findings import Location
    from kfm_gitops.schema import validate_data

    shown = display_path(path)
    text = read_text(path, shown=shown)
    if isinstance(text, Finding):
        return [text]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [Finding("RECEIPT_INVALID", f"not JSON: {exc.msg}", Location(shown, exc.lineno, exc.colno))]
    problems = validate_data(data, "receipt")
    if problems:
        return [Finding("RECEIPT_INVALID", p, Location(shown)) for p in problems]
    receipt = Receipt(data)
    if receipt.bytes != text.encode("utf-8"):
        return [Finding("RECEIPT_NOT_CANONICAL", "the receipt is not in canonical JSON form (was it edited?)",
                        Location(shown))]
    return receipt


def actor(committer: str | None) -> dict[str, str]:
    """Who runs this: KFM_ACTOR, else the git committer; the pipeline role in CI, else contributor."""
    principal = os.environ.get("KFM_ACTOR") or committer or "unknown"
    role = "pipeline" if os.environ.get("CI") else "contributor"
    return {"principal": "_".join(principal.split()) or "unknown", "role": role}
