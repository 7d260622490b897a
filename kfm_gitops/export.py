"""`kfm catalog export DIR`: a static catalog of what is published, for hosting.

    DIR/catalog.json                 a STAC catalog linking each dataset's published collection
    DIR/catalog.jsonld               a DCAT catalog of the published datasets (their records, merged)
    DIR/<slug>/collection.json       the published version's STAC collection
    DIR/<slug>/items/<key>.json      its items, asset links rewritten from kfm://artifact/ to store URLs
    DIR/<slug>/dcat.jsonld, prov.json

What is published is what each alias ``published/<slug>`` shows (its newest ledger entry); the records are read
from the version's evidence commit, never from the working tree. Links into the repository (run receipts) are left
out: a hosted catalog links to what it hosts and to the store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfm_gitops import _git, ledger
from kfm_gitops._fs import atomic_write
from kfm_gitops.config import Config
from kfm_gitops.errors import KfmError
from kfm_gitops.store import key_of
from kfm_gitops.versions import repo_path, version_dir

ARTIFACT = "kfm://artifact/"
STAC_VERSION = "1.1.0"
CATALOG_ID = "kfm-published"


@dataclass(frozen=True, slots=True)
class Published:
    slug: str
    version_id: str
    evidence_commit: str


def published(config: Config, repo: _git.Repository) -> list[Published]:
    """Each dataset's published version, as its alias's newest ledger entry names it."""
    out = []
    for branch in _git.local_branches(repo):
        if not branch.startswith(config.published_prefix):
            continue
        slug = branch[len(config.published_prefix):]
        head = _git.branch_head(repo, branch)
        assert head is not None
        data = _git.read_blob(repo, head, repo_path(config, config.releases_dir() / slug / "ledger.jsonl")) or b""
        entry = ledger.head_of(data, f"{branch}:releases/{slug}/ledger.jsonl")
        if entry is not None:
            subject = entry.entry["subject"]
            out.append(Published(slug, str(subject["dataset_version_id"]), str(subject["evidence_commit"])))
    return sorted(out, key=lambda p: p.slug)


def _store_url(base: str, href: str) -> str:
    return f"{base.rstrip('/')}/{key_of(href[len(ARTIFACT):])}" if href.startswith(ARTIFACT) else href


def _rewrite(value: Any, base: str) -> Any:
    """Every kfm://artifact/ reference in a record, as a URL into the store."""
    if isinstance(value, str):
        return _store_url(base, value)
    if isinstance(value, list):
        return [_rewrite(v, base) for v in value]
    if isinstance(value, dict):
        return {k: _rewrite(v, base) for k, v in value.items()}
    return value


def _links(kept: list[dict[str, Any]], *extra: dict[str, Any]) -> list[dict[str, Any]]:
    """A record's links without those into the repository (receipts, the triplet's relative paths) plus ``extra``."""
    own = [link for link in kept if link.get("rel") == "item"]
    return [*extra, *own]


def _json(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def dataset_files(config: Config, repo: _git.Repository, p: Published, base: str) -> dict[str, bytes]:
    """One published dataset's files in the export, read from its evidence commit."""
    folder = repo_path(config, version_dir(config, p.slug, p.version_id) / "catalog")
    names = _git.tree_names(repo, p.evidence_commit, f"{folder}/stac/items")
    if not names:
        raise KfmError(f"{p.slug} {p.version_id} has no catalogs at its evidence commit {p.evidence_commit[:12]}",
                       hint=f"build them (`kfm catalog build releases/{p.slug}/{p.version_id}`) in a plan PR")

    def read(rel: str) -> Any:
        blob = _git.read_blob(repo, p.evidence_commit, f"{folder}/{rel}")
        if blob is None:
            raise KfmError(f"{folder}/{rel} is missing at {p.evidence_commit[:12]}")
        return json.loads(blob)

    collection = read("stac/collection.json")
    collection["links"] = _links(collection["links"], {"rel": "root", "href": "../catalog.json",
                                                       "type": "application/json"},
                                 {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
                                 {"rel": "describedby", "href": "./dcat.jsonld", "type": "application/ld+json"})
    out = {f"{p.slug}/collection.json": _json(collection),
           f"{p.slug}/dcat.jsonld": _json(_rewrite(read("dcat.jsonld"), base)),
           f"{p.slug}/prov.json": _json(read("prov.json"))}
    for name in names:
        item = _rewrite(read(f"stac/items/{name}"), base)
        item["links"] = _links([], {"rel": "collection", "href": "../collection.json", "type": "application/json"},
                               {"rel": "parent", "href": "../collection.json", "type": "application/json"},
                               {"rel": "root", "href": "../../catalog.json", "type": "application/json"})
        out[f"{p.slug}/items/{name}"] = _json(item)
    return out


def export(config: Config, dest: Path, base_url: str) -> list[Published]:
    """Write the static catalog of what is published into ``dest``; what it holds."""
    repo = _git.discover(config.root)
    if repo is None:
        raise KfmError(f"{config.root} is not a git repository")
    datasets = published(config, repo)
    if not datasets:
        raise KfmError("nothing is published yet: there is nothing to export",
                       hint="propose a version (`kfm release propose SLUG`), merge it into release, `kfm promote`")
    files: dict[str, bytes] = {}
    graph: list[Any] = []
    for p in datasets:
        files.update(dataset_files(config, repo, p, base_url))
        graph += json.loads(files[f"{p.slug}/dcat.jsonld"])["@graph"]
    root = {"type": "Catalog", "stac_version": STAC_VERSION, "id": CATALOG_ID,
            "description": "The published versions of this repository's datasets",
            "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"},
                      *({"rel": "child", "href": f"./{p.slug}/collection.json", "type": "application/json",
                         "title": f"{p.slug} {p.version_id}"} for p in datasets)]}
    files["catalog.json"] = _json(root)
    context = json.loads(files[f"{datasets[0].slug}/dcat.jsonld"])["@context"]
    datasets_ids = [{"@id": n["@id"]} for n in graph if n.get("@type") == "dcat:Dataset"]
    files["catalog.jsonld"] = _json({"@context": context, "@graph": [
        {"@id": f"kfm://catalog/{CATALOG_ID}", "@type": "dcat:Catalog", "dct:title": "Published datasets",
         "dcat:dataset": datasets_ids}, *graph]})
    for rel, data in sorted(files.items()):
        atomic_write(dest / rel, data)
    return datasets
