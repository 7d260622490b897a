"""The catalog step: a dataset version's DCAT, STAC and PROV records, cross-linked, made from its evidence.

    build_catalogs(root, version_dir, store)     -> {path inside the version folder: bytes}
    validate_catalogs(root, version_dir, store)  -> CatalogCheck (findings at file:line:col with a JSON pointer,
                                                    and the link report)
    write_catalogs(version_dir, files)              each file written atomically

``build`` is the pure part (``CatalogInputs`` -> bytes). The roll-up, which must list the catalogs by digest in the
manifest before it writes its receipt, calls it on what it holds in memory::

    docs = version_docs(root, f"releases/{slug}/{version}", manifest, runs_doc,
                        Rollup(run_id, created_at, actor, f"releases/{slug}/{version}/receipt.json"))
    files = build(inputs_for(root, store, docs))   # then the receipt is made with created_at=created_at

(``version_docs`` returns findings instead when something is wrong.) The same inputs give the same bytes: no clock
(times come from the receipts), sorted keys, one number format; the manifest's ``catalogs`` list is never read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfm_gitops.catalog._inputs import CatalogInputs, Rollup, VersionDocs, version_docs
from kfm_gitops.catalog._layout import COLLECTION_FILE, DCAT_FILE, ITEMS_DIR, PROV_FILE
from kfm_gitops.config import Vocabularies
from kfm_gitops.findings import Finding
from kfm_gitops.store import Store

__all__ = ["COLLECTION_FILE", "DCAT_FILE", "ITEMS_DIR", "PROV_FILE", "CatalogCheck", "CatalogInputs", "Rollup",
           "VersionDocs", "build", "build_catalogs", "inputs_for", "read_inputs", "validate_catalogs", "version_docs",
           "write_catalogs"]


def _vocabulary(root: Path) -> Vocabularies:
    from kfm_gitops.config import load_config
    from kfm_gitops.errors import FindingsError

    config = load_config(root)
    if isinstance(config, list):
        raise FindingsError(config, "kfm.yaml is not valid: its vocabularies are needed")
    return config.vocab


def read_inputs(root: Path, version_dir: Path, store: Store, vocab: Vocabularies | None = None) -> CatalogInputs:
    """Everything the builders need, read from a version folder, its receipts, the contract, the plan and the
    artifacts' footers; raises FindingsError with every problem found."""
    from kfm_gitops.catalog._inputs import read_version
    from kfm_gitops.errors import FindingsError

    docs = read_version(root, version_dir)
    if isinstance(docs, list):
        raise FindingsError(docs, "the version folder cannot be read")
    return inputs_for(root, store, docs, vocab)


def inputs_for(root: Path, store: Store, docs: VersionDocs, vocab: Vocabularies | None = None) -> CatalogInputs:
    """The builders' inputs for a version's documents (read, or held by the roll-up before it writes them): the
    contract of its spec_hash, its plan's people, and its artifacts' runtime metadata from the store."""
    from kfm_gitops.catalog._artifacts import read_artifacts
    from kfm_gitops.catalog._inputs import contract_dataset, plan_people
    from kfm_gitops.errors import FindingsError

    vocab = vocab or _vocabulary(root)
    dataset = contract_dataset(root, docs)
    plan = plan_people(root, docs)
    if isinstance(dataset, Finding) or isinstance(plan, Finding):
        raise FindingsError([f for f in (dataset, plan) if isinstance(f, Finding)],
                            "the catalogs' inputs are incomplete")
    artifacts = read_artifacts(root, store, docs, dataset)
    if isinstance(artifacts, list):
        raise FindingsError(artifacts, "the version's artifacts cannot be described")
    return CatalogInputs(docs, dataset, plan, artifacts, vocab.policy_labels[0] if vocab.policy_labels else "")


def build(inputs: CatalogInputs) -> dict[str, bytes]:
    """The three catalogs from their inputs: {path inside the version folder: bytes}. Pure."""
    from kfm_gitops.catalog.dcat import build_dcat
    from kfm_gitops.catalog.prov import build_prov
    from kfm_gitops.catalog.stac import build_stac

    return {DCAT_FILE: build_dcat(inputs), **build_stac(inputs), PROV_FILE: build_prov(inputs)}


def build_catalogs(root: Path, version_dir: Path, store: Store) -> dict[str, bytes]:
    """`kfm catalog build VERSION_DIR`: the catalogs of a version folder (not written)."""
    return build(read_inputs(root, version_dir, store))


def write_catalogs(version_dir: Path, files: Mapping[str, bytes]) -> None:
    """Write the catalogs into a version folder (or its staging copy), each file atomically. A few at once: the
    time goes into fsync, and the file system commits concurrent ones together."""
    from concurrent.futures import ThreadPoolExecutor

    from kfm_gitops._fs import atomic_write

    for folder in sorted({(version_dir / rel).parent for rel in files}):
        folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda rel: atomic_write(version_dir / rel, files[rel]), sorted(files)))


@dataclass(frozen=True, slots=True)
class CatalogCheck:
    """What `kfm catalog validate` found: the files checked, findings, and how each link resolved."""

    version_folder: str
    checked: tuple[str, ...]
    findings: tuple[Finding, ...]
    links: tuple[dict[str, Any], ...]
    clearance: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checked) and not any(f.severity == "error" for f in self.findings)

    def link_report(self) -> dict[str, Any]:
        from kfm_gitops.catalog.links import STATUSES

        counts = {s: sum(1 for link in self.links if link["status"] == s) for s in STATUSES}
        return {"kfm_link_report_version": "v1", "version_folder": self.version_folder,
                "clearance": self.clearance, "counts": counts, "links": list(self.links)}


def catalog_texts(version_dir: Path, files: Mapping[str, bytes] | None) -> dict[str, str]:
    """The catalog files to check: given (a build not yet written), else those in the version folder."""
    if files is not None:
        return {rel: data.decode("utf-8") for rel, data in files.items()}
    out = {}
    paths = [version_dir / DCAT_FILE, version_dir / COLLECTION_FILE, version_dir / PROV_FILE,
             *sorted((version_dir / ITEMS_DIR).glob("*.json"))]
    for path in paths:
        if path.is_file():
            out[path.relative_to(version_dir).as_posix()] = path.read_text(encoding="utf-8")
    return out


def validate_catalogs(root: Path, version_dir: Path, store: Store | None, *, files: Mapping[str, bytes] | None = None,
                      clearance: str | None = None, vocab: Vocabularies | None = None) -> CatalogCheck:
    """`kfm catalog validate VERSION_DIR` (and gate D): the catalogs validate (pystac's core schemas and kfm's
    extension checks, pyshacl with kfm's DCAT profile, the prov package and the lineage rules), every link
    resolves, and the three agree with the manifest on every digest."""
    from kfm_gitops.catalog._validate import validate

    return validate(root, version_dir, store, catalog_texts(version_dir, files), clearance,
                    vocab or _vocabulary(root))
