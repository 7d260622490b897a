"""STAC 1.1: one Collection per dataset version and one Item per partition artifact.

Extents come from the artifacts' runtime metadata (coarsened for a restricted label); each Item's asset names its
artifact as ``kfm://artifact/sha256:...`` with the ``file`` extension's checksum and size and the ``projection``
extension's CRS code. Items link to their collection, the DCAT and PROV records, and the receipt of the run that
made the artifact: that link alone differs between clones that ran the same plan.

Validation is offline: the core schemas pystac ships, and the extension fields kfm writes checked here.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from functools import cache
from typing import Any

from kfm_gitops.catalog._extent import BBox, coarsen, precision, span, union
from kfm_gitops.catalog._inputs import CatalogInputs, Run
from kfm_gitops.catalog._json import Problem, dict_at, dicts, dumps, list_at, pointer
from kfm_gitops.catalog._layout import (
    COLLECTION_FILE,
    DCAT_FILE,
    PROV_FILE,
    artifact_ref,
    collection_id,
    digest_of_multihash,
    item_file,
    multihash,
)

STAC_VERSION = "1.1.0"
FILE_EXTENSION = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
PROJECTION_EXTENSION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
PROVENANCE_REL = "http://www.w3.org/ns/prov#has_provenance"  # W3C PROV-AQ's link relation
JSON, GEOJSON, JSONLD = "application/json", "application/geo+json", "application/ld+json"
FILE_FIELDS = ("file:checksum", "file:size", "file:byte_order", "file:header_size", "file:values", "file:local_path")
PROJ_FIELDS = ("proj:code", "proj:wkt2", "proj:projjson", "proj:geometry", "proj:bbox", "proj:centroid",
               "proj:shape", "proj:transform")


def _rel(src: str, target: str) -> str:
    """``target`` relative to the folder of ``src`` (both relative to the same folder), as a STAC href."""
    out = posixpath.relpath(target, posixpath.dirname(src))
    return out if out.startswith("../") else f"./{out}"


def _geometry(b: BBox) -> dict[str, Any]:
    if b[0] == b[2] and b[1] == b[3]:
        return {"type": "Point", "coordinates": [b[0], b[1]]}
    ring = [[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]], [b[0], b[1]]]
    return {"type": "Polygon", "coordinates": [ring]}


def _record_links(src: str) -> list[dict[str, Any]]:
    return [{"rel": "describedby", "href": _rel(src, DCAT_FILE), "type": JSONLD, "title": "DCAT record"},
            {"rel": PROVENANCE_REL, "href": _rel(src, PROV_FILE), "type": JSON, "title": "PROV record"}]


def _receipt_link(src: str, folder: str, run: Run) -> dict[str, Any]:
    """The run's receipt, from a file in the version folder (``folder`` is the folder's repository path)."""
    target = posixpath.relpath(run.receipt_path, folder)
    return {"rel": "via", "href": _rel(src, target), "type": JSON, "title": f"receipt of {run.run_id}",
            "file:checksum": multihash(run.receipt_digest)}


def make_item(inputs: CatalogInputs, part: Mapping[str, Any], run: Run, step: float | None) -> dict[str, Any]:
    key, digest = str(part["partition"]), str(part["processed"])
    meta = inputs.artifacts[digest]
    box = coarsen(meta.bbox, step)
    src = item_file(key)
    up = _rel(src, COLLECTION_FILE)
    asset = {"href": artifact_ref(digest), "type": inputs.media_type(digest), "roles": ["data"],
             "title": f"{inputs.slug} {key}", "file:checksum": multihash(digest), "file:size": meta.size,
             "proj:code": str(inputs.dataset["extent"]["crs"])}
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [FILE_EXTENSION, PROJECTION_EXTENSION],
        "id": key,
        "collection": collection_id(inputs.slug, inputs.version),
        "geometry": _geometry(box),
        "bbox": list(box),
        "properties": {"title": key, "datetime": None, "start_datetime": meta.start, "end_datetime": meta.end},
        "links": [{"rel": rel, "href": up, "type": JSON} for rel in ("collection", "parent", "root")]
        + _record_links(src) + [_receipt_link(src, inputs.docs.folder, run)],
        "assets": {"data": asset},
    }


def _license(dataset: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    lic = dataset.get("license") or {}
    if lic.get("spdx"):
        return str(lic["spdx"]), []
    return "other", [{"rel": "license", "href": str(lic["url"]), "title": "licence"}] if lic.get("url") else []


def make_collection(inputs: CatalogInputs, step: float | None) -> dict[str, Any]:
    d = inputs.dataset
    parts = inputs.partitions()
    metas = [inputs.artifacts[str(p["processed"])] for p in parts]
    start, end = span(metas)
    licence, licence_links = _license(d)
    publisher = d.get("publisher") or {}
    provider: dict[str, Any] = {"name": str(publisher.get("name", "")), "roles": ["licensor", "producer"]}
    if str(publisher.get("url", "")).startswith(("https://", "http://")):
        provider["url"] = publisher["url"]
    items = [{"rel": "item", "href": _rel(COLLECTION_FILE, item_file(str(p["partition"]))), "type": GEOJSON}
             for p in parts]
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "id": collection_id(inputs.slug, inputs.version),
        "title": f"{d['title']}, version {inputs.version}",
        "description": str(d["description"]).strip(),
        "keywords": [str(k) for k in d.get("keywords", [])],
        "license": licence,
        "providers": [provider],
        "extent": {"spatial": {"bbox": [list(coarsen(union(m.bbox for m in metas), step))]},
                   "temporal": {"interval": [[start, end]]}},
        "links": [{"rel": "root", "href": "./collection.json", "type": JSON}, *_record_links(COLLECTION_FILE),
                  *licence_links, *items],
    }


def producing_run(inputs: CatalogInputs, part: Mapping[str, Any]) -> Run:
    """The run that made a partition's artifact: one of this version's, or (carried) one of a base version's."""
    key, digest = str(part["partition"]), str(part["processed"])
    for run in inputs.docs.chunk_runs:
        if any(o.get("role") == f"partition:{key}" and o.get("digest") == digest
               for o in run.receipt.get("outputs", [])):
            return run
    return inputs.docs.carried[key]


def build_stac(inputs: CatalogInputs) -> dict[str, bytes]:
    """The Collection and the Items: {path inside the version folder: bytes}."""
    step = precision(inputs.label, inputs.open_label, inputs.obligations)
    out = {COLLECTION_FILE: dumps(make_collection(inputs, step))}
    for part in inputs.partitions():
        out[item_file(str(part["partition"]))] = dumps(make_item(inputs, part, producing_run(inputs, part), step))
    return out


# Validation.

def _core_schemas() -> tuple[dict[str, Any], str]:
    from pystac.validation.local_validator import get_local_schema_cache

    return get_local_schema_cache(), f"https://schemas.stacspec.org/v{STAC_VERSION}/{{0}}-spec/json-schema/{{0}}.json"


@cache
def _fast_validator(kind: str) -> Any:
    """pystac's bundled STAC core schema of ``kind`` (item, collection) compiled by fastjsonschema, every reference
    resolved from pystac's local schema cache (nothing is fetched). Formats are not checked, as pystac does not."""
    import fastjsonschema

    cache_, uri = _core_schemas()

    def local(ref: str) -> Any:
        if ref in cache_:
            return cache_[ref]
        import jsonschema  # a JSON Schema meta-schema: jsonschema carries them

        for cls in (jsonschema.Draft7Validator, jsonschema.Draft6Validator, jsonschema.Draft4Validator,
                    jsonschema.Draft201909Validator, jsonschema.Draft202012Validator):
            meta = cls.META_SCHEMA
            if str(meta.get("$id", meta.get("id", ""))).rstrip("#") == ref.rstrip("#"):
                return meta
        raise ValueError(f"{ref} is not a schema kfm has locally: kfm fetches nothing")

    return fastjsonschema.compile(cache_[uri.format(kind)], handlers={"https": local, "http": local},
                                  use_formats=False)


@cache
def _core_validator(kind: str) -> Any:
    """The same schema with jsonschema, for a precise message and pointer when the fast check fails."""
    import jsonschema.validators
    from referencing import Registry, Resource

    cache_, uri = _core_schemas()
    registry: Registry[Any] = Registry().with_resources([(k, Resource.from_contents(v)) for k, v in cache_.items()])
    schema = cache_[uri.format(kind)]
    return jsonschema.validators.validator_for(schema)(schema, registry=registry)


def _schema_problems(file: str, doc: Any, kind: str) -> list[Problem]:
    import fastjsonschema
    import jsonschema.exceptions

    try:
        _fast_validator(kind)(doc)
        return []
    except fastjsonschema.JsonSchemaException as exc:
        fast = exc
    best = jsonschema.exceptions.best_match(_core_validator(kind).iter_errors(doc))
    if best is None:  # the engines disagree: the fast one's word, where it can say
        return [Problem(file, "", "STAC_INVALID", f"{fast} (STAC {STAC_VERSION} {kind} schema)")]
    return [Problem(file, pointer(*best.absolute_path), "STAC_INVALID",
                    f"{best.message} (STAC {STAC_VERSION} {kind} schema)")]


def _extension_problems(file: str, doc: Mapping[str, Any]) -> list[Problem]:
    """The file and projection extension fields kfm writes: declared, known, and well-formed."""
    out: list[Problem] = []
    holders = [(pointer("assets", k), v) for k, v in dict_at(doc, "assets").items()]
    holders += [(pointer("links", i), v) for i, v in enumerate(list_at(doc, "links"))]
    declared = list_at(doc, "stac_extensions")
    for at, obj in holders:
        if not isinstance(obj, dict):
            continue
        for key, value in obj.items():
            where = at + pointer(key)
            if key.startswith("file:"):
                out += _file_field(file, where, key, value, FILE_EXTENSION in declared)
            elif key.startswith("proj:"):
                ok = key in PROJ_FIELDS and (key != "proj:code" or value is None or isinstance(value, str))
                if not ok or PROJECTION_EXTENSION not in declared:
                    out.append(Problem(file, where, "STAC_EXTENSION", f"{key} is not a well-formed, declared field "
                                       "of the projection extension v2.0.0"))
    return out


def _file_field(file: str, where: str, key: str, value: Any, declared: bool) -> list[Problem]:
    if not declared:
        return [Problem(file, where, "STAC_EXTENSION", f"{key} is used but stac_extensions does not list "
                        f"{FILE_EXTENSION}")]
    if key == "file:checksum" and not (isinstance(value, str) and digest_of_multihash(value)):
        return [Problem(file, where, "STAC_EXTENSION", "file:checksum must be a sha256 multihash (1220 + 64 "
                        "lowercase hex)")]
    if key == "file:size" and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return [Problem(file, where, "STAC_EXTENSION", "file:size must be a non-negative integer")]
    if key not in FILE_FIELDS:
        return [Problem(file, where, "STAC_EXTENSION", f"{key} is not a field of the file extension v2.1.0")]
    return []


def _asset_problems(file: str, doc: Mapping[str, Any]) -> list[Problem]:
    """Each asset's checksum is the digest its href names (a digest that does not match is a finding)."""
    from kfm_gitops.catalog._layout import ARTIFACT_REF_RE

    out = []
    for name, asset in dict_at(doc, "assets").items():
        if not isinstance(asset, dict):
            continue
        m = ARTIFACT_REF_RE.fullmatch(str(asset.get("href", "")))
        if m is None:
            out.append(Problem(file, pointer("assets", name, "href"), "STAC_ASSET",
                               "an asset's href is kfm://artifact/sha256:<64 hex>"))
        elif digest_of_multihash(str(asset.get("file:checksum", ""))) != m.group(1):
            out.append(Problem(file, pointer("assets", name, "file:checksum"), "STAC_CHECKSUM",
                               f"the checksum is not the digest the href names ({m.group(1)})"))
    return out


def check_stac(docs: Mapping[str, Any], slug: str, version: str) -> list[Problem]:
    """Core schemas, extension fields, and the structure kfm writes: ``docs`` maps the STAC files (paths inside
    the version folder) to their parsed JSON."""
    out: list[Problem] = []
    items = {f: d for f, d in docs.items() if f != COLLECTION_FILE}
    collection = docs.get(COLLECTION_FILE)
    if collection is None:
        return [Problem(COLLECTION_FILE, "", "STAC_MISSING", "the version has no STAC collection")]
    out += _schema_problems(COLLECTION_FILE, collection, "collection")
    cid = collection_id(slug, version)
    if isinstance(collection, dict) and collection.get("id") != cid:
        out.append(Problem(COLLECTION_FILE, "/id", "STAC_IDENTITY", f"the collection's id is {cid}"))
    listed = {posixpath.normpath(posixpath.join("catalog/stac", str(link.get("href"))))
              for link in dicts(list_at(collection, "links")) if link.get("rel") == "item"}
    for file in sorted(set(items) - listed):
        out.append(Problem(COLLECTION_FILE, "/links", "STAC_ITEM_UNLISTED", f"the collection does not link {file}"))
    for file, doc in sorted(items.items()):
        out += _schema_problems(file, doc, "item")
        if not isinstance(doc, dict):
            continue
        out += _extension_problems(file, doc) + _asset_problems(file, doc)
        if doc.get("collection") != cid:
            out.append(Problem(file, "/collection", "STAC_IDENTITY", f"an item of this version names {cid}"))
        if doc.get("id") != posixpath.basename(file).removesuffix(".json"):
            out.append(Problem(file, "/id", "STAC_IDENTITY", "an item's id is its file's name"))
    return out
