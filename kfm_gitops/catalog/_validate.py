"""`kfm catalog validate`: every check on a version's catalogs, as findings at file:line:col with a JSON pointer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfm_gitops.catalog._inputs import MANIFEST, read_json
from kfm_gitops.catalog._json import Locator, Problem
from kfm_gitops.catalog._layout import COLLECTION_FILE, DCAT_FILE, ITEMS_DIR, PROV_FILE
from kfm_gitops.config import Vocabularies
from kfm_gitops.findings import Finding, Location, sort_findings
from kfm_gitops.store import Store

if TYPE_CHECKING:
    from kfm_gitops.catalog import CatalogCheck


def parse(locator: Locator, texts: dict[str, str]) -> tuple[dict[str, Any], list[Finding]]:
    docs: dict[str, Any] = {}
    findings = []
    for file, text in sorted(texts.items()):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            findings.append(Finding("CATALOG_NOT_JSON", f"not JSON: {exc.msg}",
                                    Location(locator.shown(file), exc.lineno, exc.colno)))
            continue
        if isinstance(doc, dict):
            docs[file] = doc
        else:
            findings.append(Finding("CATALOG_NOT_OBJECT", f"#: a catalog file holds a JSON object, not "
                                    f"{type(doc).__name__}", Location(locator.shown(file), 1, 1)))
    for file in (DCAT_FILE, COLLECTION_FILE, PROV_FILE):
        if file not in texts:
            findings.append(Finding("CATALOG_MISSING", "the version has no such catalog file",
                                    Location(locator.shown(file)), hint="`kfm catalog build` writes it"))
    return docs, findings


def checks(root: Path, folder: str, store: Store | None, manifest: dict[str, Any], docs: dict[str, Any],
           texts: dict[str, str], clearance: str | None, vocab: Vocabularies
           ) -> tuple[list[Problem], list[dict[str, Any]]]:
    """The validators, the links and the agreement, as problems; and the link report's entries."""
    from kfm_gitops.catalog.dcat import check_dcat
    from kfm_gitops.catalog.links import Resolver, agreement, carried_provenance, check_links
    from kfm_gitops.catalog.prov import check_prov
    from kfm_gitops.catalog.stac import check_stac

    stac = {f: d for f, d in docs.items() if f == COLLECTION_FILE or f.startswith(f"{ITEMS_DIR}/")}
    problems = []
    if COLLECTION_FILE in docs:  # a missing file is already a finding
        problems += check_stac(stac, str(manifest.get("dataset_slug")), str(manifest.get("dataset_version_id")))
    if DCAT_FILE in docs:
        problems += check_dcat(texts[DCAT_FILE], docs[DCAT_FILE])
    if PROV_FILE in docs:
        problems += check_prov(texts[PROV_FILE], docs[PROV_FILE])
    resolver = Resolver(root, store, vocab, clearance, overlay={f"{folder}/{f}": d for f, d in docs.items()})
    link_problems, report = check_links(resolver, folder, docs)
    problems += link_problems + agreement(manifest, docs, store) + carried_provenance(resolver, docs.get(PROV_FILE))
    return problems, report


def validate(root: Path, version_dir: Path, store: Store | None, texts: dict[str, str], clearance: str | None,
             vocab: Vocabularies) -> CatalogCheck:
    from kfm_gitops.catalog import CatalogCheck

    folder = version_dir.resolve().relative_to(root.resolve()).as_posix()
    locator = Locator(folder, texts)
    docs, findings = parse(locator, texts)
    got = read_json(root, f"{folder}/{MANIFEST}")
    if isinstance(got, Finding):
        return CatalogCheck(folder, (), (got, *findings), (), clearance)
    problems, report = checks(root, folder, store, got[0], docs, texts, clearance, vocab)
    findings += locator.findings(problems)
    checked = tuple(locator.shown(f) for f in sorted(texts))
    return CatalogCheck(folder, checked, tuple(sort_findings(findings)), tuple(report), clearance)
