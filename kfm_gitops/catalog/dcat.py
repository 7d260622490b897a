"""DCAT 3 in JSON-LD: one dcat:Dataset per dataset version and one dcat:Distribution per partition artifact.

The context is inline (no URL to fetch). Every node has an IRI, so that a SHACL result on any node names a JSON
pointer; the dataset's is its EvidenceRef ``dcat://<slug>@<version>``, a distribution's that with the partition as
fragment. The record holds nothing about runs: two clones that ran the same plan write the same bytes.

Validation: pyshacl with kfm's own DCAT profile (``dcat-profile.ttl``, package data).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from kfm_gitops.catalog._extent import BBox, coarsen, precision, span, union
from kfm_gitops.catalog._inputs import CatalogInputs
from kfm_gitops.catalog._json import Problem, dumps, pointer
from kfm_gitops.catalog._layout import DCAT_FILE, artifact_ref, dataset_ref, rollup_iri

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "geo": "http://www.opengis.net/ont/geosparql#",
    "prov": "http://www.w3.org/ns/prov#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "spdx": "http://spdx.org/rdf/terms#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
IANA = "https://www.iana.org/assignments/media-types/"
SHA256 = "spdx:checksumAlgorithm_sha256"
PROFILE = "dcat-profile.ttl"
# Labels as the EU access-right vocabulary names them (a see-also beside the label itself).
ACCESS_RIGHTS = "http://publications.europa.eu/resource/authority/access-right/"


def _typed(value: str, datatype: str) -> dict[str, str]:
    return {"@value": value, "@type": datatype}


def _wkt(b: BBox) -> str:
    ring = [(b[0], b[1]), (b[2], b[1]), (b[2], b[3]), (b[0], b[3]), (b[0], b[1])]
    return "POLYGON((" + ", ".join(f"{x!r} {y!r}" for x, y in ring) + "))"


def _licence_iri(dataset: Mapping[str, Any]) -> str:
    lic = dataset.get("license") or {}
    return f"http://spdx.org/licenses/{lic['spdx']}" if lic.get("spdx") else str(lic["url"])


def _notices(inputs: CatalogInputs) -> list[str]:
    """What record-only obligations ask a reader to see: attribution and notices, in their order."""
    out = []
    for ob in inputs.obligations:
        if ob.get("type") in ("require_attribution", "show_notice"):
            text = (ob.get("params") or {}).get("text") or ob.get("message")
            if text:
                out.append(str(text))
    return out


def _distribution(inputs: CatalogInputs, part: Mapping[str, Any], licence: str, links: bool) -> dict[str, Any]:
    key, digest = str(part["partition"]), str(part["processed"])
    ref = artifact_ref(digest)
    node: dict[str, Any] = {
        "@id": dataset_ref(inputs.slug, inputs.version, key),
        "@type": "dcat:Distribution",
        "dct:title": key,
        "dcat:accessURL": {"@id": ref},
        "dcat:mediaType": {"@id": IANA + inputs.media_type(digest)},
        "dcat:byteSize": _typed(str(inputs.artifacts[digest].size), "xsd:nonNegativeInteger"),
        "dct:license": {"@id": licence},
        "spdx:checksum": {"@id": dataset_ref(inputs.slug, inputs.version, f"{key}/checksum"),
                          "@type": "spdx:Checksum", "spdx:algorithm": {"@id": SHA256},
                          "spdx:checksumValue": _typed(digest.removeprefix("sha256:"), "xsd:hexBinary")},
    }
    if links:  # deny_asset_links: the record names the artifact, it offers no download
        node["dcat:downloadURL"] = {"@id": ref}
    return node


def _dataset(inputs: CatalogInputs, licence: str, parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    d = inputs.dataset
    ds = dataset_ref(inputs.slug, inputs.version)
    node: dict[str, Any] = {
        "@id": ds,
        "@type": "dcat:Dataset",
        "dct:title": str(d["title"]),
        "dct:description": str(d["description"]).strip(),
        "dct:identifier": ds,
        "dcat:version": inputs.version,
        "dcat:keyword": [str(k) for k in d.get("keywords", [])],
        "dct:license": {"@id": licence},
        "dct:accessRights": {"@id": f"{ds}#access-rights"},
        "dct:temporal": {"@id": f"{ds}#temporal"},
        "dct:spatial": {"@id": f"{ds}#spatial"},
        "dct:publisher": {"@id": f"{ds}#publisher"},
        "prov:wasGeneratedBy": {"@id": rollup_iri(inputs.slug, inputs.version)},
        "dcat:distribution": [{"@id": dataset_ref(inputs.slug, inputs.version, str(p["partition"]))}
                              for p in parts],
    }
    if _notices(inputs):
        node["dct:rights"] = {"@id": f"{ds}#rights"}
    return node


def _context_nodes(inputs: CatalogInputs, licence: str, parts: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The nodes the dataset and its distributions point at: rights, coverage, publisher, licence, activity."""
    ds = dataset_ref(inputs.slug, inputs.version)
    metas = [inputs.artifacts[str(p["processed"])] for p in parts]
    start, end = span(metas)
    box = coarsen(union(m.bbox for m in metas), precision(inputs.label, inputs.open_label, inputs.obligations))
    publisher = inputs.dataset.get("publisher") or {}
    agent: dict[str, Any] = {"@id": f"{ds}#publisher", "@type": "foaf:Agent", "foaf:name": str(publisher["name"])}
    if str(publisher.get("url", "")).startswith(("https://", "http://")):
        agent["foaf:homepage"] = {"@id": publisher["url"]}
    nodes = [
        {"@id": f"{ds}#access-rights", "@type": "dct:RightsStatement", "rdfs:label": inputs.label,
         "rdfs:seeAlso": {"@id": ACCESS_RIGHTS + _access_right(inputs.label, inputs.open_label)}},
        {"@id": f"{ds}#temporal", "@type": "dct:PeriodOfTime", "dcat:startDate": _typed(start, "xsd:dateTime"),
         "dcat:endDate": _typed(end, "xsd:dateTime")},
        {"@id": f"{ds}#spatial", "@type": "dct:Location", "dcat:bbox": _typed(_wkt(box), "geo:wktLiteral")},
        agent,
        {"@id": licence, "@type": "dct:LicenseDocument"},
        {"@id": rollup_iri(inputs.slug, inputs.version), "@type": "prov:Activity"},
        {"@id": SHA256, "@type": "spdx:ChecksumAlgorithm"},
    ]
    nodes += [{"@id": IANA + t, "@type": "dct:MediaType"}
              for t in sorted({inputs.media_type(str(p["processed"])) for p in parts})]
    if _notices(inputs):
        nodes.append({"@id": f"{ds}#rights", "@type": "dct:RightsStatement", "rdfs:label": _notices(inputs)})
    return nodes


def _access_right(label: str, open_label: str) -> str:
    if label == open_label or label.startswith(f"{open_label}_"):
        return "PUBLIC"
    return "RESTRICTED" if label.startswith("restricted") or label == "embargoed" else "NON_PUBLIC"


def build_dcat(inputs: CatalogInputs) -> bytes:
    """The DCAT record of the version (catalog/dcat.jsonld)."""
    parts = inputs.partitions()
    licence = _licence_iri(inputs.dataset)
    links = not any(ob.get("type") == "deny_asset_links" for ob in inputs.obligations)
    graph = [_dataset(inputs, licence, parts), *_context_nodes(inputs, licence, parts)]
    graph += [_distribution(inputs, p, licence, links) for p in parts]
    return dumps({"@context": CONTEXT, "@graph": graph})


# Validation.

@cache
def profile_shapes() -> Any:
    """kfm's DCAT profile as an rdflib graph (package data, parsed once)."""
    from importlib.resources import files

    import rdflib

    return rdflib.Graph().parse(data=files("kfm_gitops.catalog").joinpath(PROFILE).read_text("utf-8"),
                                format="turtle")


def remote_contexts(doc: Any, at: str = "") -> Iterator[str]:
    """Pointers to any @context that is not inline (a URL would have to be fetched: kfm never does)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "@context" and (not isinstance(value, dict) or "@import" in value):
                yield at + pointer(key)
            else:
                yield from remote_contexts(value, at + pointer(key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from remote_contexts(value, at + pointer(i))


def node_pointers(doc: Any, at: str = "", out: dict[str, str] | None = None) -> dict[str, str]:
    """Every node IRI of a JSON-LD document -> the pointer of the object that defines it (has more than @id)."""
    out = {} if out is None else out
    if isinstance(doc, dict):
        if isinstance(doc.get("@id"), str) and len(doc) > 1:
            out.setdefault(doc["@id"], at)
        for key, value in doc.items():
            node_pointers(value, at + pointer(key), out)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            node_pointers(value, at + pointer(i), out)
    return out


def _compact(iri: str) -> str:
    for prefix, ns in CONTEXT.items():
        if iri.startswith(ns):
            return f"{prefix}:{iri[len(ns):]}"
    return iri


def check_dcat(text: str, doc: Any) -> list[Problem]:
    """Parse the record offline and validate it with pyshacl against kfm's DCAT profile; a pyshacl exception is a
    failure, never conformance."""
    remote = list(remote_contexts(doc))
    if remote or not isinstance(doc, dict) or not isinstance(doc.get("@context"), dict):
        return [Problem(DCAT_FILE, remote[0] if remote else "", "DCAT_CONTEXT",
                        "the record's @context must be inline (kfm fetches nothing)")]
    import warnings

    import pyshacl
    import rdflib

    try:
        with warnings.catch_warnings():
            # pyshacl calls rdflib APIs rdflib deprecates: their notices say nothing about this record.
            warnings.simplefilter("ignore", DeprecationWarning)
            graph = rdflib.Graph().parse(data=text, format="json-ld")
            conforms, results, _ = pyshacl.validate(graph, shacl_graph=profile_shapes(), inference="none",
                                                    advanced=False, allow_warnings=False)
    except Exception as exc:  # any failure of the parser or validator: the record is not shown to conform
        return [Problem(DCAT_FILE, "", "DCAT_UNCHECKABLE", f"the record could not be validated: "
                        f"{type(exc).__name__}: {str(exc)[:200]}")]
    if conforms:
        return []
    return shacl_problems(results, doc) or [Problem(DCAT_FILE, "", "DCAT_INVALID", "does not conform")]


def shacl_problems(results: Any, doc: Any) -> list[Problem]:
    """pyshacl's results as problems at the JSON pointer of the focus node (and of the property, when there)."""
    import rdflib

    sh = rdflib.Namespace("http://www.w3.org/ns/shacl#")
    where = node_pointers(doc)
    nodes = {ptr: _at(doc, ptr) for ptr in where.values()}
    out = []
    for result in results.subjects(rdflib.RDF.type, sh.ValidationResult):
        focus = str(results.value(result, sh.focusNode))
        path = results.value(result, sh.resultPath)
        key = _compact(str(path)) if path is not None else ""
        node_ptr = where.get(focus, "")
        node = nodes.get(node_ptr)
        ptr = node_ptr + pointer(key) if key and isinstance(node, dict) and key in node else node_ptr
        message = str(results.value(result, sh.resultMessage) or "does not conform")
        out.append(Problem(DCAT_FILE, ptr, "DCAT_INVALID", f"{focus}{' ' + key if key else ''}: {message}"))
    return sorted(out, key=lambda p: (p.pointer, p.message))


def _at(doc: Any, ptr: str) -> Any:
    from kfm_gitops.catalog._json import parts_of

    for step in parts_of(ptr):
        doc = doc[step]
    return doc
