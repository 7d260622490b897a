"""`kfm report PLAN`: the closeout report of a backfill, in Markdown (GitHub renders it, Mermaid included, in pull
request comments and step summaries): what changed, the window, each chunk with its state and rows, the version,
gate results when it was promoted, links to the evidence, and a gantt of coverage: partitions filled by this plan,
carried from its base, chunks with quarantined rows, and what is still missing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kfm_gitops.config import Config
from kfm_gitops.errors import KfmError
from kfm_gitops.periods import Period, get_zone, iso_utc, period_of_key
from kfm_gitops.plan import Plan
from kfm_gitops.versions import (
    MANIFEST_FILE,
    QA_FILE,
    QUARANTINE_FILE,
    VersionManifest,
    read_version,
    repo_path,
    version_dir,
)


@dataclass(frozen=True, slots=True)
class ChunkLine:
    key: str
    state: str
    total: int
    accepted: int
    quarantined: int
    run: str  # the run folder ("" when the chunk has not run)
    reasons: dict[str, int]


def _json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def chunk_lines(config: Config, plan: Plan, version: VersionManifest | None) -> list[ChunkLine]:
    """Each chunk of the plan as its version's QA summary and its run's quarantine record tell it."""
    summary = _json(version.folder / QA_FILE) if version else {}
    by_key = {str(c.get("chunk")): c for c in summary.get("chunks", []) if isinstance(c, dict)}
    out = []
    for chunk in plan.chunks():
        c = by_key.get(chunk.key, {})
        rows = c.get("rows", {}) if isinstance(c.get("rows"), dict) else {}
        run = str(c.get("run") or "")
        reasons = _json(config.root / run / QUARANTINE_FILE).get("counts", {}) if run else {}
        out.append(ChunkLine(chunk.key, str(c.get("state", "not run")), int(rows.get("total", 0)),
                             int(rows.get("accepted", 0)), int(rows.get("quarantined", 0)), run,
                             {str(k): int(v) for k, v in reasons.items()}))
    return out


def _gates_of(config: Config, version_id: str, slug: str) -> dict[str, str] | None:
    """The gate results the ledger recorded when the version was published (None when it was not)."""
    from kfm_gitops import _git

    repo = _git.discover(config.root)
    head = _git.branch_head(repo, config.release_branch) if repo else None
    if repo is None or head is None:
        return None
    data = _git.read_blob(repo, head, repo_path(config, config.releases_dir() / slug / "ledger.jsonl")) or b""
    entries = [json.loads(line) for line in data.splitlines() if version_id.encode() in line]
    mine = [e for e in entries if e["subject"]["dataset_version_id"] == version_id]
    return dict(mine[-1]["gates"]) if mine else None


def _span(key: str, zone: str) -> Period:
    return period_of_key(key, get_zone(zone))


def _day(t: datetime) -> str:
    return iso_utc(t)[:10]


def gantt(plan: Plan, version: VersionManifest | None, lines: list[ChunkLine], zone: str) -> list[str]:
    """A Mermaid gantt of the version's coverage over the plan's window and what it carries."""
    out = ["```mermaid", "gantt", f"  title Coverage of {plan.slug}" + (f" {version.version_id}" if version else ""),
           "  dateFormat YYYY-MM-DD", "  axisFormat %Y-%m"]
    sections: dict[str, list[str]] = {"filled by this plan": [], "carried from the base": [],
                                      "quarantined rows": [], "missing": []}
    keys = version.partition_keys if version else []
    for i, key in enumerate(keys):
        p = _span(key, zone)
        where = "filled by this plan" if plan.start <= p.start < plan.end else "carried from the base"
        tag = "done, " if where.startswith("filled") else ""
        sections[where].append(f"  {key} :{tag}p{i}, {_day(p.start)}, {_day(p.end)}")
    for j, line in enumerate(lines):
        c = _span_of_chunk(plan, line.key)
        if line.quarantined:
            sections["quarantined rows"].append(f"  {line.key} ({line.quarantined} rows) :crit, q{j}, "
                                                f"{_day(c.start)}, {_day(c.end)}")
        if line.state not in ("done", "reused"):
            sections["missing"].append(f"  {line.key} ({line.state}) :crit, m{j}, {_day(c.start)}, {_day(c.end)}")
    for name, rows in sections.items():
        if rows:
            out += [f"  section {name}", *rows]
    return [*out, "```"]


def _span_of_chunk(plan: Plan, key: str) -> Period:
    return next(c for c in plan.chunks() if c.key == key)


def report(config: Config, plan: Plan) -> str:
    """The closeout report of ``plan`` (rolled up or not)."""
    from kfm_gitops.identity import VERSION_PLACEHOLDER

    vid = plan.expected_version if plan.expected_version != VERSION_PLACEHOLDER else ""
    version = read_version(version_dir(config, plan.slug, vid)) if vid else None
    if isinstance(version, list):
        raise KfmError(f"the version {vid} the plan names cannot be read: {version[0].message}",
                       hint="run `kfm backfill run` on the plan, or restore its version folder from git")
    lines = chunk_lines(config, plan, version)
    data = plan.doc.data
    shown = repo_path(config, plan.path.resolve()) if plan.path.is_absolute() else plan.path.as_posix()
    out = [f"## Backfill report: {plan.slug}", "", f"Plan `{shown}`: {data.get('reason', '')}", "",
           f"- window: {iso_utc(plan.start)} .. {iso_utc(plan.end)} ({plan.mode} chunks, {plan.timezone}), "
           f"{plan.time_axis}",
           f"- requested by {data.get('requested_by', '?')}; reviewers: "
           f"{', '.join(data.get('reviewers') or []) or 'none'}",
           f"- label {plan.label}; obligations: {', '.join(str(o.get('type')) for o in plan.obligations) or 'none'}"]
    if version is None:
        out += ["- version: not rolled up yet (`kfm backfill run` on the plan makes it)"]
    else:
        folder = repo_path(config, version.folder)
        out += [f"- version `{version.version_id}`, base `{version.base or 'none (first release)'}`: "
                f"[{MANIFEST_FILE}]({folder}/{MANIFEST_FILE}), [runs.json]({folder}/runs.json), "
                f"[roll-up receipt]({folder}/receipt.json)"]
        gates = _gates_of(config, version.version_id, plan.slug)
        out += [f"- gates at promotion: {' '.join(f'{g} {s}' for g, s in sorted(gates.items()))}" if gates else
                "- not published yet: its gates run on the release PR (`kfm gate run all " + folder + "`)"]
    out += ["", "| chunk | state | rows in | published | quarantined (by reason) | receipt |",
            "| --- | --- | ---: | ---: | --- | --- |"]
    for line in lines:
        why = ", ".join(f"{n} {r}" for r, n in sorted(line.reasons.items()))
        receipt = f"[receipt]({line.run}/receipt.json)" if line.run else ""
        out.append(f"| {line.key} | {line.state} | {line.total} | {line.accepted} | {line.quarantined}"
                   f"{f' ({why})' if why else ''} | {receipt} |")
    totals = [sum(getattr(line, f) for line in lines) for f in ("total", "accepted", "quarantined")]
    out += [f"| **all** | | {totals[0]} | {totals[1]} | {totals[2]} | |", ""]
    return "\n".join([*out, *gantt(plan, version, lines, plan.timezone), ""])

