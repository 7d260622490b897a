"""The catalog triplet of a version (DCAT, STAC, PROV): built from the quickstart's three versions, checked with the
official validators (pystac with the extension schemas, pyshacl with the DCAT-AP 3.0.1 shapes, a prov round trip),
byte-identical where it must be, and every way of breaking it found at its file and JSON pointer."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import isolate
from kfm_gitops.catalog import (
    COLLECTION_FILE,
    DCAT_FILE,
    PROV_FILE,
    CatalogCheck,
    build,
    build_catalogs,
    read_inputs,
    validate_catalogs,
)
from kfm_gitops.errors import FindingsError
from kfm_gitops.findings import Finding
from kfm_gitops.store import Store

# The standards sit beside the checkout (CI puts shared/ there too); without them these tests fail, never skip.
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
STANDARDS = SHARED / "standards"
SLUG = "ks_storm_reports"
FIRST, GAP_FILLED, GENERALISED = "2023-06.69a8eb0e.7df9ce5a", "2023-06.69a8eb0e.fbdb57cb", "2023-06.69a8eb0e.307e516a"
VERSIONS = (FIRST, GAP_FILLED, GENERALISED)


def folder(root: Path, version: str) -> Path:
    return root / "releases" / SLUG / version


def store_of(root: Path) -> Store:
    return Store(str(root / ".kfm" / "objects"))


def check(root: Path, version: str, **kwargs: Any) -> CatalogCheck:
    return validate_catalogs(root, folder(root, version), store_of(root), **kwargs)


def quickstart(root: Path) -> None:
    """`kfm quickstart`: each roll-up writes its version's catalogs and lists them by digest in the manifest."""
    from kfm_gitops.cli import main
    from kfm_gitops.identity import sha256_digest

    assert main(["quickstart", str(root)]) == 0
    for version in VERSIONS:
        manifest = json.loads((folder(root, version) / "promotion-manifest.json").read_text())
        listed = {c["path"]: c["digest"] for c in manifest["catalogs"]}
        written = {p.relative_to(folder(root, version)).as_posix(): sha256_digest(p.read_bytes())
                   for p in (folder(root, version) / "catalog").rglob("*.json*")}
        assert listed == written and len(listed) >= 3 + len(manifest["partitions"])


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The quickstart's repository with its catalogs: shared by the tests of this module, which only read it."""
    base = tmp_path_factory.mktemp("catalog")
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, base)
        quickstart(base / "qs")
        yield base / "qs"


@pytest.fixture
def repo(example: Path, tmp_path: Path) -> Path:
    """A copy of the example to break."""
    dest = tmp_path / "repo"
    shutil.copytree(example, dest, symlinks=True)
    return dest


def edit(path: Path, mutate: Callable[[Any], None]) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    mutate(doc)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def graph_index(doc: Any, node_id: str) -> int:
    return next(i for i, n in enumerate(doc["@graph"]) if n.get("@id") == node_id)


def one(found: CatalogCheck | list[Finding], code: str, file_end: str) -> Finding:
    """The one finding with this code in a file ending so (its line must be a real one)."""
    findings = found.findings if isinstance(found, CatalogCheck) else found
    hits = [f for f in findings if f.code == code and f.location is not None and f.location.path.endswith(file_end)]
    assert len(hits) == 1, [f.text() for f in findings]
    assert hits[0].location is not None and hits[0].location.line is not None
    return hits[0]


def line_of(root: Path, f: Finding) -> str:
    assert f.location is not None and f.location.line is not None
    return (root / f.location.path).read_text(encoding="utf-8").splitlines()[f.location.line - 1]


# The official validators, offline.

def stac_validate_all(collection: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pystac's validate_all from the collection: core schemas bundled with pystac, the file and projection
    extension schemas from shared/standards in its schema cache, and a StacIO that refuses the network."""
    import pystac
    from pystac.validation import JsonSchemaSTACValidator, RegisteredValidator, validate_all_dict

    class Offline(pystac.StacIO):
        def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
            assert not str(source).startswith(("http://", "https://")), f"would fetch {source}"
            return Path(str(source)).read_text(encoding="utf-8")

        def write_text(self, dest: Any, txt: str, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("read only")

    validator = JsonSchemaSTACValidator()
    for name in ("file-v2.1.0.json", "projection-v2.0.0.json"):
        schema = json.loads((STANDARDS / "stac-extensions" / name).read_text(encoding="utf-8"))
        validator.schema_cache[schema["$id"].rstrip("#")] = schema
    monkeypatch.setattr(pystac.StacIO, "_default_io", Offline)
    monkeypatch.setattr(RegisteredValidator, "_validator", validator)
    validate_all_dict(json.loads(collection.read_text(encoding="utf-8")), str(collection), Offline())


def dcat_ap_conforms(record: Path) -> tuple[bool, str]:
    """pyshacl with the DCAT-AP 3.0.1 shapes loaded alone; an exception propagates (it is not conformance)."""
    import warnings

    import pyshacl
    import rdflib

    shapes = rdflib.Graph().parse(str(STANDARDS / "dcat-ap-3.0.1" / "dcat-ap-SHACL.ttl"), format="turtle")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # rdflib's own ConjunctiveGraph, in its parser too
        data = rdflib.Graph().parse(data=record.read_text(encoding="utf-8"), format="json-ld")
        conforms, _, text = pyshacl.validate(data, shacl_graph=shapes, inference="none")
    return bool(conforms), str(text)


def prov_round_trip(record: Path) -> int:
    import prov.model

    doc = prov.model.ProvDocument.deserialize(content=record.read_text(encoding="utf-8"), format="json")
    again = prov.model.ProvDocument.deserialize(content=doc.serialize(format="json"), format="json")
    assert again == doc
    return len(doc.records)


def test_the_shared_standards_are_there() -> None:
    for rel in ("stac-extensions/file-v2.1.0.json", "stac-extensions/projection-v2.0.0.json",
                "dcat-ap-3.0.1/dcat-ap-SHACL.ttl"):
        assert (STANDARDS / rel).is_file(), f"{STANDARDS / rel} is missing: these tests need ../shared/standards/"


@pytest.mark.parametrize("version", VERSIONS)
def test_the_example_versions_carry_a_triplet_that_passes(example: Path, version: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from kfm_gitops.catalog.prov import check_prov

    result = check(example, version)
    assert result.ok and result.findings == (), [f.text() for f in result.findings]
    report = result.link_report()
    assert report["counts"]["RESOLVED"] == len(result.links) > 50
    assert {"UNRESOLVED": 0, "DENIED": 0, "ERROR": 0}.items() <= report["counts"].items()
    catalog = folder(example, version) / "catalog"
    stac_validate_all(catalog / "stac" / "collection.json", monkeypatch)
    conforms, text = dcat_ap_conforms(catalog / "dcat.jsonld")
    assert conforms, text
    assert prov_round_trip(catalog / "prov.json") > 20
    text = (catalog / "prov.json").read_text(encoding="utf-8")
    assert check_prov(text, json.loads(text)) == []


def test_each_catalog_describes_every_partition_of_the_version(example: Path) -> None:
    manifest = json.loads((folder(example, GAP_FILLED) / "promotion-manifest.json").read_text())
    parts = {p["partition"]: p["processed"] for p in manifest["partitions"]}
    catalog = folder(example, GAP_FILLED) / "catalog"
    items = {p.stem: json.loads(p.read_text()) for p in (catalog / "stac" / "items").glob("*.json")}
    assert {k: i["assets"]["data"]["href"] for k, i in items.items()} == \
        {k: f"kfm://artifact/{d}" for k, d in parts.items()}
    dcat = json.loads((catalog / "dcat.jsonld").read_text())
    dists = {n["dct:title"]: n["dcat:accessURL"]["@id"] for n in dcat["@graph"] if n["@type"] == "dcat:Distribution"}
    assert dists == {k: f"kfm://artifact/{d}" for k, d in parts.items()}
    prov = json.loads((catalog / "prov.json").read_text())
    carried = {e["kfm:partition"]: e["kfm:provenance"] for e in prov["entity"].values() if "kfm:carriedFrom" in e}
    # Carried partitions link to the base's runs instead of repeating their provenance; 2023-03 is this version's.
    assert sorted(carried) == ["2023-01", "2023-02", "2023-04", "2023-05", "2023-06"]
    assert all(ref.startswith("prov://kfm://run/") for ref in carried.values())
    assert [a for a in prov["activity"] if a.startswith("kfm:run/")] == \
        [f"kfm:run/{Path(r['run_id']).name}" for r in json.loads((folder(example, GAP_FILLED) / "runs.json")
                                                                  .read_text())["runs"]]
    assert dcat["@graph"][0]["prov:wasGeneratedBy"]["@id"] in {f"kfm://{a[4:]}" for a in prov["activity"]}


def test_rebuilding_a_committed_version_gives_the_same_bytes(example: Path) -> None:
    for version in VERSIONS:
        files = build_catalogs(example, folder(example, version), store_of(example))
        on_disk = {p.relative_to(folder(example, version)).as_posix(): p.read_bytes()
                   for p in (folder(example, version) / "catalog").rglob("*") if p.is_file()}
        assert files == on_disk


def test_the_roll_up_can_build_from_what_it_holds_before_writing(example: Path) -> None:
    """What the roll-up has before it writes the version folder (the manifest without catalogs, runs.json, its run
    id and time) gives the bytes a rebuild of the written folder gives."""
    from kfm_gitops.catalog import Rollup, inputs_for, version_docs

    base = folder(example, GAP_FILLED)
    manifest = {**json.loads((base / "promotion-manifest.json").read_text()), "catalogs": ["not read"]}
    runs = json.loads((base / "runs.json").read_text())
    receipt = json.loads((base / "receipt.json").read_text())
    rel = f"releases/{SLUG}/{GAP_FILLED}"
    docs = version_docs(example, rel, manifest, runs,
                        Rollup(receipt["run_id"], receipt["created_at"], receipt["actor"], f"{rel}/receipt.json"))
    assert not isinstance(docs, list)
    files = build(inputs_for(example, store_of(example), docs))
    assert files == build_catalogs(example, base, store_of(example))
    broken = version_docs(example, rel, {**manifest, "partitions": "none"}, runs, docs.rollup)
    assert isinstance(broken, list) and broken[0].code == "CATALOG_INPUT"


def test_catalogs_not_yet_written_validate_from_memory(repo: Path) -> None:
    files = build_catalogs(repo, folder(repo, GAP_FILLED), store_of(repo))
    shutil.rmtree(folder(repo, GAP_FILLED) / "catalog")
    result = validate_catalogs(repo, folder(repo, GAP_FILLED), store_of(repo), files=files)
    assert result.ok and result.findings == (), [f.text() for f in result.findings]
    broken = {**files, DCAT_FILE: files[DCAT_FILE].replace(b'"dct:title"', b'"dct:titel"', 1)}
    result = validate_catalogs(repo, folder(repo, GAP_FILLED), store_of(repo), files=broken)
    assert [f.code for f in result.findings] == ["DCAT_INVALID"]


def test_stac_and_dcat_are_byte_identical_across_two_clones(example: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    quickstart(other)

    def describing(root: Path, version: str) -> dict[str, Any]:
        """The STAC and DCAT files, the items without their links to run folders."""
        out: dict[str, Any] = {}
        for p in sorted((folder(root, version) / "catalog").rglob("*.json*")):
            rel = p.relative_to(folder(root, version)).as_posix()
            if rel == PROV_FILE:
                continue
            doc = json.loads(p.read_bytes())
            if rel.startswith("catalog/stac/items/"):
                doc["links"] = [link for link in doc["links"] if "/runs/" not in link["href"]]
                out[rel] = doc
            else:
                out[rel] = p.read_bytes()
        return out

    for version in VERSIONS:
        assert describing(example, version) == describing(other, version)
        mine, theirs = (json.loads((folder(r, version) / PROV_FILE).read_text()) for r in (example, other))
        assert set(mine["activity"]) != set(theirs["activity"])  # PROV carries each clone's own run ids


def test_extents_of_a_restricted_label_are_coarsened_to_the_obligations_precision(example: Path) -> None:
    from kfm_gitops.catalog._artifacts import read_artifact

    for version, step in ((GAP_FILLED, None), (GENERALISED, 0.1)):
        for path in sorted((folder(example, version) / "catalog" / "stac" / "items").glob("*.json")):
            item = json.loads(path.read_text())
            exact = read_artifact(store_of(example), item["assets"]["data"]["href"][15:], ["event_time"]).bbox
            if step is None:
                assert tuple(item["bbox"]) == exact
                continue
            box = item["bbox"]
            assert all(abs(v / step - round(v / step)) < 1e-9 for v in box), box  # on the 0.1 degree grid
            assert box[0] <= exact[0] and box[1] <= exact[1] and box[2] >= exact[2] and box[3] >= exact[3]
            assert box[0] > exact[0] - step and box[3] < exact[3] + step  # grown by less than one step
    collection = json.loads((folder(example, GENERALISED) / COLLECTION_FILE).read_text())
    assert collection["extent"]["spatial"]["bbox"] == [[-101.3, 37.0, -94.6, 39.5]]
    dcat = json.loads((folder(example, GENERALISED) / DCAT_FILE).read_text())
    spatial = next(n for n in dcat["@graph"] if n["@type"] == "dct:Location")
    assert spatial["dcat:bbox"]["@value"] == "POLYGON((-101.3 37.0, -94.6 37.0, -94.6 39.5, -101.3 39.5, -101.3 37.0))"


def test_precision_follows_the_label_and_the_obligations() -> None:
    from kfm_gitops.catalog._extent import WHOLE_DEGREE, coarsen, precision
    from kfm_gitops.policy import grid_cell

    def gen(method: str) -> list[dict[str, Any]]:
        return [{"type": "generalize_geometry", "params": {"method": method}}]

    assert precision("public", "public", gen("round_1_decimals")) is None
    assert precision("restricted", "public", gen("round_2_decimals")) == 0.01
    assert precision("restricted", "public", gen("grid_aggregation_5km")) == grid_cell("grid_aggregation_5km")
    assert precision("restricted", "public", gen("centroid_only")) == WHOLE_DEGREE
    assert precision("internal", "public", []) == WHOLE_DEGREE
    assert coarsen((-98.76, 37.01, -94.62, 39.5), 0.1) == (-98.8, 37.0, -94.6, 39.5)
    assert coarsen((-179.95, -89.99, 179.95, 89.99), 1.0) == (-180.0, -90.0, 180.0, 90.0)
    assert coarsen((-98.123456789, 37.0, -98.0, 37.5), None) == (-98.123456789, 37.0, -98.0, 37.5)


def test_a_restricted_label_gives_no_download_link_when_asset_links_are_denied(example: Path, tmp_path: Path
                                                                              ) -> None:
    import dataclasses

    inputs = read_inputs(example, folder(example, GENERALISED), store_of(example))
    policy = {**inputs.docs.manifest["policy"], "policy_label": "restricted",
              "obligations": [*inputs.obligations, {"type": "deny_asset_links"}]}
    docs = dataclasses.replace(inputs.docs, manifest={**inputs.docs.manifest, "policy": policy})
    files = build(dataclasses.replace(inputs, docs=docs))
    dcat = json.loads(files[DCAT_FILE])
    dists = [n for n in dcat["@graph"] if n["@type"] == "dcat:Distribution"]
    assert dists and all("dcat:downloadURL" not in n and "dcat:accessURL" in n for n in dists)
    rights = next(n for n in dcat["@graph"] if n["@id"].endswith("#access-rights"))
    assert rights["rdfs:label"] == "restricted" and rights["rdfs:seeAlso"]["@id"].endswith("/RESTRICTED")
    assert files != build(inputs)  # the label is part of what the records say
    record = tmp_path / "dcat.jsonld"
    record.write_bytes(files[DCAT_FILE])
    conforms, text = dcat_ap_conforms(record)
    assert conforms, text


def test_the_contract_of_the_evidence_commit_is_used_when_the_working_tree_changed(repo: Path) -> None:
    dataset = repo / "datasets" / SLUG / "dataset.yaml"
    dataset.write_text(dataset.read_text().replace("title: Kansas severe", "title: Renamed Kansas severe"))
    before = (folder(repo, GAP_FILLED) / DCAT_FILE).read_bytes()
    assert build_catalogs(repo, folder(repo, GAP_FILLED), store_of(repo))[DCAT_FILE] == before
    shutil.rmtree(repo / ".git")  # and without the commit, no contract has the version's spec_hash
    with pytest.raises(FindingsError) as err:
        build_catalogs(repo, folder(repo, GAP_FILLED), store_of(repo))
    assert [f.code for f in err.value.findings] == ["CATALOG_CONTRACT"]


# Bad input: each a finding at the file and JSON pointer.

def test_a_missing_artifact(repo: Path) -> None:
    manifest = json.loads((folder(repo, GAP_FILLED) / "promotion-manifest.json").read_text())
    digest = manifest["partitions"][2]["processed"]
    assert manifest["partitions"][2]["partition"] == "2023-03"
    store_of(repo).local_path(digest).unlink()  # type: ignore[union-attr]
    with pytest.raises(FindingsError) as err:
        build_catalogs(repo, folder(repo, GAP_FILLED), store_of(repo))
    f = one(err.value.findings, "ARTIFACT_MISSING", f"{GAP_FILLED}/promotion-manifest.json")
    assert f.message.startswith("#/partitions/2/processed: the artifact of partition 2023-03:")
    assert digest in line_of(repo, f)
    result = check(repo, GAP_FILLED)
    assert not result.ok
    f = one(result, "LINK_UNRESOLVED", "items/2023-03.json")
    assert f.message.startswith("#/assets/data/href: kfm://artifact/" + digest) and '"href"' in line_of(repo, f)
    dcat = json.loads((folder(repo, GAP_FILLED) / DCAT_FILE).read_text())
    i = graph_index(dcat, f"dcat://{SLUG}@{GAP_FILLED}#2023-03")
    hits = sorted(x.message.split(": ")[0] for x in result.findings if x.code == "LINK_UNRESOLVED"
                  and x.location is not None and x.location.path.endswith(DCAT_FILE))
    assert hits == [f"#/@graph/{i}/dcat:accessURL/@id", f"#/@graph/{i}/dcat:downloadURL/@id"]
    f = one(result, "LINK_UNRESOLVED", PROV_FILE)
    assert f.message.startswith(f"#/entity/kfm:artifact~1{digest}: ")


def test_a_digest_that_does_not_match(repo: Path) -> None:
    catalog = folder(repo, GAP_FILLED) / "catalog"
    other = json.loads((catalog / "stac" / "items" / "2023-04.json").read_text())["assets"]["data"]["href"]
    edit(catalog / "stac" / "items" / "2023-03.json", lambda d: d["assets"]["data"].update(href=other))
    dcat = json.loads((catalog / "dcat.jsonld").read_text())
    i = graph_index(dcat, f"dcat://{SLUG}@{GAP_FILLED}#2023-01")
    edit(catalog / "dcat.jsonld", lambda d: d["@graph"][i]["spdx:checksum"]["spdx:checksumValue"].update(
        {"@value": "ab" * 32}))
    result = check(repo, GAP_FILLED)
    f = one(result, "CATALOG_DIGEST_MISMATCH", "items/2023-03.json")
    assert f.message.startswith("#/assets/data/href: partition 2023-03:") and '"href"' in line_of(repo, f)
    f = one(result, "STAC_CHECKSUM", "items/2023-03.json")
    assert f.message.startswith("#/assets/data/file:checksum: ")
    f = one(result, "CATALOG_DIGEST_MISMATCH", DCAT_FILE)
    assert f.message.startswith(f"#/@graph/{i}/spdx:checksum: partition 2023-01")


def test_a_receipt_link_whose_digest_does_not_match(repo: Path) -> None:
    item = folder(repo, GAP_FILLED) / "catalog" / "stac" / "items" / "2023-03.json"
    edit(item, lambda d: d["links"][-1].update({"file:checksum": "1220" + "cd" * 32}))
    f = one(check(repo, GAP_FILLED), "LINK_UNRESOLVED", "items/2023-03.json")
    assert f.message.startswith("#/links/5/href: ../../../../runs/") and "its digest is" in f.message


def test_a_dangling_link(repo: Path) -> None:
    catalog = folder(repo, GAP_FILLED) / "catalog"
    collection = json.loads((catalog / "stac" / "collection.json").read_text())
    k = next(i for i, link in enumerate(collection["links"]) if link["href"] == "./items/2023-03.json")
    edit(catalog / "stac" / "collection.json", lambda d: d["links"][k].update(href="./items/2099-01.json"))
    result = check(repo, GAP_FILLED)
    f = one(result, "LINK_UNRESOLVED", "stac/collection.json")
    assert f.message == f"#/links/{k}/href: ./items/2099-01.json: no such file in the repository"
    assert "2099-01" in line_of(repo, f)
    f = one(result, "STAC_ITEM_UNLISTED", "stac/collection.json")
    assert "catalog/stac/items/2023-03.json" in f.message


def test_a_removed_required_property(repo: Path) -> None:
    catalog = folder(repo, GAP_FILLED) / "catalog"
    edit(catalog / "stac" / "items" / "2023-02.json", lambda d: d.pop("geometry"))
    edit(catalog / "stac" / "collection.json", lambda d: d.pop("extent"))
    edit(catalog / "dcat.jsonld", lambda d: d["@graph"][0].pop("dct:title"))
    result = check(repo, GAP_FILLED)
    f = one(result, "STAC_INVALID", "items/2023-02.json")
    assert f.message.startswith("#: 'geometry' is a required property")
    f = one(result, "STAC_INVALID", "stac/collection.json")
    assert f.message.startswith("#: 'extent' is a required property")
    f = one(result, "DCAT_INVALID", DCAT_FILE)
    assert f.message.startswith(f"#/@graph/0: dcat://{SLUG}@{GAP_FILLED} dct:title: Less than 1 values")
    assert f.location is not None and f.location.line is not None and f.location.line > 10


def test_a_prov_relation_to_an_unknown_id(repo: Path) -> None:
    path = folder(repo, GAP_FILLED) / PROV_FILE
    doc = json.loads(path.read_text())
    rid = sorted(doc["used"])[0]
    unknown = "kfm:artifact/sha256:" + "e" * 64
    edit(path, lambda d: d["used"][rid].update({"prov:entity": unknown}))
    f = one(check(repo, GAP_FILLED), "PROV_UNDECLARED", PROV_FILE)
    assert f.message == f"#/used/{rid}/prov:entity: {unknown} is not a declared entity"
    assert unknown in line_of(repo, f)


def test_the_lineage_rules(repo: Path) -> None:
    path = folder(repo, GAP_FILLED) / PROV_FILE
    doc = json.loads(path.read_text())
    derived = next(iter(doc["wasDerivedFrom"]))
    artifact = doc["wasDerivedFrom"][derived]["prov:generatedEntity"]
    carried = sorted(e for e, a in doc["entity"].items() if "kfm:carriedFrom" in a)
    chunk = next(a for a in doc["activity"] if a.startswith("kfm:run/"))

    def mutate(d: Any) -> None:
        del d["wasDerivedFrom"][derived]  # the new artifact no longer derives from RAW
        del d["entity"][carried[0]]["kfm:provenance"]  # a carried one without its link
        d["entity"][carried[1]]["kfm:provenance"] = f"prov://kfm://run/{chunk[8:]}"  # linked to the wrong run
        d["activity"][chunk]["prov:endTime"] = "2000-01-01T00:00:00+00:00"  # ends before it starts

    edit(path, mutate)
    result = check(repo, GAP_FILLED)
    lineage = sorted(f.message.split(": ")[0] for f in result.findings if f.code == "PROV_LINEAGE")
    assert lineage == sorted(f"#/entity/{e.replace('/', '~1')}" for e in (artifact, carried[0]))
    f = one(result, "CATALOG_PROVENANCE_MISMATCH", PROV_FILE)
    assert f.message.startswith(f"#/entity/{carried[1].replace('/', '~1')}/kfm:provenance: the receipt of")
    times = sorted(f.message for f in result.findings if f.code == "PROV_TIME")
    assert times[0].startswith(f"#/activity/{chunk.replace('/', '~1')}/prov:endTime: the activity ends before")
    assert len(times) > 1  # and its generations now fall outside it


def test_a_record_prov_cannot_read_and_one_that_is_not_json(repo: Path) -> None:
    path = folder(repo, GAP_FILLED) / PROV_FILE
    path.write_text(json.dumps({"entity": {"kfm:x": {"prov:type": {"$": "1", "type": "xsd:nope:x"}}},
                                "prefix": {"kfm": "kfm://"}, "used": 3}))
    f = one(check(repo, GAP_FILLED), "PROV_UNREADABLE", PROV_FILE)
    assert f.message.startswith("#: the prov package cannot read it")
    path.write_text('{"entity": {,}}\n')
    result = check(repo, GAP_FILLED)
    f = one(result, "CATALOG_NOT_JSON", PROV_FILE)
    assert (f.location.line, f.location.col) == (1, 13)  # type: ignore[union-attr]
    assert not result.ok


def test_a_remote_json_ld_context_is_refused_not_fetched(repo: Path) -> None:
    edit(folder(repo, GAP_FILLED) / DCAT_FILE, lambda d: d.update({"@context": "https://example.org/context.jsonld"}))
    f = one(check(repo, GAP_FILLED), "DCAT_CONTEXT", DCAT_FILE)
    assert f.message.startswith("#/@context: the record's @context must be inline")


def test_the_extension_fields_are_checked_by_kfm_as_the_official_schemas_do(repo: Path) -> None:
    import jsonschema

    item = folder(repo, GAP_FILLED) / "catalog" / "stac" / "items" / "2023-05.json"
    edit(item, lambda d: d["assets"]["data"].update({"file:size": -1, "proj:code": 4326}))
    result = check(repo, GAP_FILLED)
    problems = sorted(f.message for f in result.findings if f.code == "STAC_EXTENSION")
    assert [m.split(": ")[0] for m in problems] == ["#/assets/data/file:size", "#/assets/data/proj:code"]
    doc = json.loads(item.read_text())
    for name in ("file-v2.1.0.json", "projection-v2.0.0.json"):  # the official schemas reject both too
        schema = json.loads((STANDARDS / "stac-extensions" / name).read_text())
        assert list(jsonschema.Draft7Validator(schema).iter_errors(doc))


def test_missing_catalog_files_fail_closed(repo: Path) -> None:
    shutil.rmtree(folder(repo, GAP_FILLED) / "catalog")
    result = check(repo, GAP_FILLED)
    assert not result.ok and result.checked == ()
    assert sorted(f.code for f in result.findings) == ["CATALOG_MISSING"] * 3


def test_a_version_folder_that_cannot_be_read(repo: Path) -> None:
    (folder(repo, GAP_FILLED) / "runs.json").unlink()
    with pytest.raises(FindingsError) as err:
        build_catalogs(repo, folder(repo, GAP_FILLED), store_of(repo))
    assert [(f.code, str(f.location)) for f in err.value.findings] == [
        ("FILE_NOT_FOUND", f"releases/{SLUG}/{GAP_FILLED}/runs.json")]


def test_an_altered_receipt_is_refused(repo: Path) -> None:
    runs = json.loads((folder(repo, GAP_FILLED) / "runs.json").read_text())
    receipt = repo / runs["runs"][0]["receipt"]
    receipt.write_bytes(receipt.read_bytes().replace(b'"contributor"', b'"pipeline"'))
    with pytest.raises(FindingsError) as err:
        build_catalogs(repo, folder(repo, GAP_FILLED), store_of(repo))
    f = one(err.value.findings, "CATALOG_INPUT", f"{GAP_FILLED}/runs.json")
    assert f.message.startswith("#/runs/0/digest: ") and runs["runs"][0]["digest"] in line_of(repo, f)


# The EvidenceRef resolver.

def test_the_resolver_answers_resolved_unresolved_denied_or_error(example: Path) -> None:
    from kfm_gitops.catalog.links import Resolver

    manifest = json.loads((folder(example, GAP_FILLED) / "promotion-manifest.json").read_text())
    processed, raw = manifest["partitions"][0]["processed"], manifest["partitions"][0]["raw"][0]
    runs = json.loads((folder(example, GAP_FILLED) / "runs.json").read_text())["runs"]
    full = Resolver(example, store_of(example))
    public = Resolver(example, store_of(example), clearance="public")
    cases = [
        (full, f"kfm://artifact/{processed}", "RESOLVED"),
        (full, f"kfm://artifact/sha256:{'e' * 64}", "UNRESOLVED"),
        (full, "kfm://artifact/sha256:XYZ", "ERROR"),
        (Resolver(example, None), f"kfm://artifact/{processed}", "ERROR"),  # no store to look in
        (full, f"dcat://{SLUG}@{GAP_FILLED}", "RESOLVED"),
        (full, f"dcat://{SLUG}@{GAP_FILLED}#2023-03", "RESOLVED"),
        (full, f"dcat://{SLUG}@{GAP_FILLED}#2099-01", "UNRESOLVED"),
        (full, f"dcat://{SLUG}@2023-06.69a8eb0e.00000000", "UNRESOLVED"),
        (full, f"dcat://{SLUG}@latest", "ERROR"),  # no guessing which version is meant
        (full, f"stac://{SLUG}@{GAP_FILLED}/items/2023-03", "RESOLVED"),
        (full, f"stac://{SLUG}@{GAP_FILLED}/items/2099-01", "UNRESOLVED"),
        (full, f"prov://{runs[0]['run_id']}", "RESOLVED"),
        (full, "prov://kfm://run/20990101T000000Z.2023-01.deadbeef", "UNRESOLVED"),
        (full, "prov://run-somewhere", "ERROR"),
        (full, "https://example.org/anything", "ERROR"),
        (public, f"kfm://artifact/{processed}", "RESOLVED"),  # published under the open label
        (public, f"dcat://{SLUG}@{GAP_FILLED}", "RESOLVED"),
        (public, f"dcat://{SLUG}@{GENERALISED}", "DENIED"),  # public_generalized is beyond a public caller
        (public, f"stac://{SLUG}@{GENERALISED}/items/2023-03", "DENIED"),
        (public, f"kfm://artifact/{raw}", "DENIED"),  # RAW also made the generalised version: not open
        (Resolver(example, store_of(example), clearance="public_generalized"), f"dcat://{SLUG}@{GENERALISED}",
         "RESOLVED"),
    ]
    got = [(ref, resolver.resolve(ref).status) for resolver, ref, _ in cases]
    assert got == [(ref, status) for _, ref, status in cases]


def test_a_run_folder_in_two_datasets_is_ambiguous(repo: Path) -> None:
    from kfm_gitops.catalog.links import Resolver

    runs = json.loads((folder(repo, GAP_FILLED) / "runs.json").read_text())["runs"]
    source = repo / Path(runs[0]["receipt"]).parent
    shutil.copytree(source, repo / "releases" / "another_dataset" / "runs" / source.name)
    answer = Resolver(repo, store_of(repo)).resolve(f"prov://{runs[0]['run_id']}")
    assert (answer.status, answer.detail) == ("ERROR", "more than one dataset has a run folder of this name")


def test_the_link_report_lists_every_link_and_how_it_resolved(example: Path) -> None:
    result = check(example, GAP_FILLED, clearance="public")
    report = json.loads(json.dumps(result.link_report()))
    assert report["kfm_link_report_version"] == "v1" and report["clearance"] == "public"
    assert sum(report["counts"].values()) == len(report["links"]) == len(result.links)
    assert report["counts"]["DENIED"] > 0 and not result.ok  # a public caller may not follow these links
    first = report["links"][0]
    assert set(first) == {"file", "pointer", "ref", "status", "target", "detail"}
    kinds = {link["ref"].split("://")[0] for link in report["links"] if "://" in link["ref"]}
    assert {"kfm", "dcat", "prov"} <= kinds
    denied = {link["ref"] for link in report["links"] if link["status"] == "DENIED"}
    from kfm_gitops.catalog.prov import RAW, TERMS, types_of

    prov = json.loads((folder(example, GAP_FILLED) / PROV_FILE).read_text())
    sources = {f"kfm://{e[4:]}" for e, a in prov["entity"].items() if types_of(a) & {RAW, TERMS}}
    assert denied and denied == sources  # RAW (and terms) that also made the generalised version; nothing else


@pytest.mark.parametrize("text", [
    "[]", "null", '{"links": 5, "assets": [], "id": 3}', '{"links": [5, {"href": 3}], "assets": {"data": 5}}',
    '{"@graph": [5, {"@id": 3, "@type": "dcat:Distribution", "dcat:accessURL": 5, "spdx:checksum": 4}], '
    '"@context": {}}',
    '{"entity": {"kfm:a": 5}, "wasDerivedFrom": {"_:1": [5, {"prov:generatedEntity": []}]}}',
    '{"activity": {"kfm:a": {"prov:startTime": 5}}, "wasGeneratedBy": {"_:1": {"prov:time": 7}}}',
])
def test_any_malformed_catalog_file_is_findings_never_a_crash(repo: Path, text: str) -> None:
    catalog = folder(repo, GAP_FILLED) / "catalog"
    for path in (catalog / "stac" / "collection.json", catalog / "stac" / "items" / "2023-03.json",
                 catalog / "dcat.jsonld", catalog / "prov.json"):
        original = path.read_text()
        path.write_text(text)
        result = check(repo, GAP_FILLED)
        assert not result.ok and any(f.location is not None and f.location.path.endswith(
            path.relative_to(folder(repo, GAP_FILLED)).as_posix()) for f in result.findings), text
        path.write_text(original)


def test_a_time_that_is_not_an_instant(repo: Path) -> None:
    path = folder(repo, GAP_FILLED) / PROV_FILE
    rid = sorted(json.loads(path.read_text())["wasGeneratedBy"])[0]
    edit(path, lambda d: d["wasGeneratedBy"][rid].update({"prov:time": "yesterday"}))  # prov drops it, warning
    f = one(check(repo, GAP_FILLED), "PROV_UNREADABLE", PROV_FILE)
    assert "'yesterday' is not an xsd:dateTime" in f.message
    edit(path, lambda d: d["wasGeneratedBy"][rid].update({"prov:time": "2026-11-29T10:48:52"}))  # no offset
    f = one(check(repo, GAP_FILLED), "PROV_TIME", PROV_FILE)
    assert f.message == f"#/wasGeneratedBy/{rid}/prov:time: '2026-11-29T10:48:52' is not an instant with an offset"
