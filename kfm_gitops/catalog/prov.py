"""PROV, written with the ``prov`` package as PROV-JSON: how each PROCESSED artifact of a version came from RAW.

Entities: RAW objects, terms snapshots and PROCESSED artifacts by digest (``kfm:artifact/sha256:...``, which the
``kfm`` prefix expands to the EvidenceRef), each chunk's acquisition as a collection of its RAW objects, and the
version itself (``record:<slug>@<version>``, the DCAT record's IRI). Activities: each chunk run (its run id, from
the start its id records to the end its receipt records) and the roll-up (``kfm:rollup/<slug>/<version>``, the IRI
DCAT names). Agents: whoever ran the runs, the plan's requester and its reviewers. A partition carried from the base
version is not described again: its entity links to the run that made it (``kfm:provenance``, a ``prov://``
EvidenceRef) and names the base it came from.

The ``prov`` package checks no constraints, so the lineage rules are checked here: every PROCESSED artifact derives
from RAW through an activity (or is carried, with its link), times are ordered, and no relation names an id that is
not declared.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from kfm_gitops.catalog._inputs import CatalogInputs, Run
from kfm_gitops.catalog._json import Problem, dict_at, dumps, pointer
from kfm_gitops.catalog._layout import PROV_FILE, PROV_REF_RE, prov_ref, rollup_iri
from kfm_gitops.identity import RUN_ID_RE

NAMESPACES = {"kfm": "kfm://", "record": "dcat://"}
PROCESSED, RAW, TERMS = "kfm:ProcessedArtifact", "kfm:RawObject", "kfm:TermsSnapshot"


def qname(ref: str) -> str:
    """An IRI of the kfm://, dcat:// schemes as a PROV qualified name (kfm://run/x -> kfm:run/x)."""
    for prefix, ns in NAMESPACES.items():
        if ref.startswith(ns):
            return f"{prefix}:{ref[len(ns):]}"
    raise ValueError(ref)


def agent_id(principal: str) -> str:
    return "kfm:agent/" + quote(principal, safe="@._-+~")


def run_start(run_id: str) -> datetime:
    """When a run started: the instant its id records."""
    m = RUN_ID_RE.fullmatch(run_id)
    if m is None:
        raise ValueError(run_id)
    return datetime.strptime(m["time"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _acquisition(receipt: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The acquisition manifest a chunk run read or wrote, as its receipt lists it."""
    found = [io for io in [*receipt.get("outputs", []), *receipt.get("inputs", [])] if io.get("role") == "acquisition"]
    return dict(found[0]) if found else None


class _Builder:
    """One PROV document, written in a fixed order (relation ids are numbered in that order)."""

    def __init__(self, inputs: CatalogInputs) -> None:
        import prov.model

        self.inputs = inputs
        self.doc = prov.model.ProvDocument()
        for prefix, ns in NAMESPACES.items():
            self.doc.add_namespace(prefix, ns)
        self.pm = prov.model
        self.declared: set[str] = set()

    def entity(self, ident: str, attrs: list[tuple[str, Any]]) -> None:
        if ident not in self.declared:
            self.declared.add(ident)
            self.doc.entity(ident, attrs)

    def agent(self, principal: str) -> str:
        ident = agent_id(principal)
        if ident not in self.declared:
            self.declared.add(ident)
            self.doc.agent(ident)
        return ident

    def qtype(self, name: str) -> Any:
        prefix, local = name.split(":", 1)
        ns = self.pm.PROV if prefix == "prov" else self.pm.Namespace(prefix, NAMESPACES[prefix])
        return ns[local]

    def chunk_run(self, run: Run, made: list[Mapping[str, Any]]) -> None:
        """A chunk run: the activity, what it used (terms, its acquisition) and what it generated."""
        receipt = run.receipt
        start, end = run_start(run.run_id), instant(str(receipt["created_at"]))
        act = qname(run.run_id)
        self.doc.activity(act, start, end, [("prov:type", self.qtype("kfm:ChunkRun")),
                                            ("kfm:chunk", str(receipt.get("chunk", {}).get("key", ""))),
                                            ("kfm:receipt", run.receipt_path),
                                            ("kfm:receiptDigest", run.receipt_digest)])
        actor = receipt.get("actor", {})
        self.doc.wasAssociatedWith(act, self.agent(str(actor.get("principal", "unknown"))),
                                   other_attributes=[("prov:role", str(actor.get("role", "")))])
        for io in receipt.get("inputs", []):
            if io.get("role") == "terms":
                self.entity(f"kfm:artifact/{io['digest']}", [("prov:type", self.qtype(TERMS))])
                self.doc.used(act, f"kfm:artifact/{io['digest']}", start)
        raw = sorted({str(r) for p in made for r in p["raw"]})
        acq = _acquisition(receipt)
        if not made or acq is None:
            return
        collection = f"kfm:acquisition/{str(acq['uri']).rsplit('/', 1)[-1].removesuffix('.json')}"
        self.entity(collection, [("prov:type", self.qtype("prov:Collection")), ("kfm:manifest", str(acq["uri"])),
                                 ("kfm:manifestDigest", str(acq["digest"]))])
        for digest in raw:
            self.entity(f"kfm:artifact/{digest}", [("prov:type", self.qtype(RAW))])
            self.doc.hadMember(collection, f"kfm:artifact/{digest}")
        self.doc.used(act, collection, start)
        for p in made:
            ent = f"kfm:artifact/{p['processed']}"
            self.entity(ent, [("prov:type", self.qtype(PROCESSED)), ("kfm:partition", str(p["partition"]))])
            self.doc.wasGeneratedBy(ent, act, end)
            self.doc.wasDerivedFrom(ent, collection, act)

    def carried(self, part: Mapping[str, Any], run: Run) -> None:
        base = str(self.inputs.docs.manifest.get("base_dataset_version_id") or "")
        self.entity(f"kfm:artifact/{part['processed']}", [
            ("prov:type", self.qtype(PROCESSED)), ("kfm:partition", str(part["partition"])),
            ("kfm:carriedFrom", base), ("kfm:provenance", prov_ref(run.run_id))])

    def rollup(self, new: list[str], everything: list[str]) -> None:
        inputs = self.inputs
        r = inputs.docs.rollup
        act = qname(rollup_iri(inputs.slug, inputs.version))
        start, end = run_start(r.run_id), instant(r.created_at)
        self.doc.activity(act, start, end, [("prov:type", self.qtype("kfm:RollUp")), ("kfm:runId", r.run_id),
                                            ("kfm:receipt", r.receipt_path)])
        version = f"record:{inputs.slug}@{inputs.version}"
        attrs: list[tuple[str, Any]] = [("prov:type", self.qtype("prov:Collection")),
                                        ("prov:type", self.qtype("kfm:DatasetVersion"))]
        base = inputs.docs.manifest.get("base_dataset_version_id")
        if base:
            attrs.append(("kfm:baseVersion", str(base)))
        self.entity(version, attrs)
        for digest in new:
            self.doc.used(act, f"kfm:artifact/{digest}", start)
        self.doc.wasGeneratedBy(version, act, end)
        for digest in everything:
            self.doc.hadMember(version, f"kfm:artifact/{digest}")
        self.doc.wasAssociatedWith(act, self.agent(str(r.actor.get("principal", "unknown"))),
                                   other_attributes=[("prov:role", str(r.actor.get("role", "")))])
        plan = inputs.plan
        if plan.get("requested_by"):
            self.doc.wasAssociatedWith(act, self.agent(str(plan["requested_by"])),
                                       other_attributes=[("prov:role", "requester")])
        for reviewer in plan.get("reviewers", []):
            self.doc.wasAssociatedWith(act, self.agent(str(reviewer)), other_attributes=[("prov:role", "reviewer")])


def build_prov(inputs: CatalogInputs) -> bytes:
    """The PROV-JSON record of the version (catalog/prov.json)."""
    import json

    b = _Builder(inputs)
    parts = inputs.partitions()
    made_by: dict[str, list[Mapping[str, Any]]] = {}
    for run in inputs.docs.chunk_runs:
        outputs = {(str(o.get("role", "")), str(o.get("digest"))) for o in run.receipt.get("outputs", [])}
        made_by[run.run_id] = [p for p in parts if (f"partition:{p['partition']}", p["processed"]) in outputs]
    for run in sorted(inputs.docs.chunk_runs, key=lambda r: r.run_id):
        b.chunk_run(run, made_by[run.run_id])
    new = {str(p["processed"]) for made in made_by.values() for p in made}
    for p in parts:
        if str(p["processed"]) not in new:
            b.carried(p, inputs.docs.carried[str(p["partition"])])
    b.rollup(sorted(new), [str(p["processed"]) for p in parts])
    return dumps(json.loads(_json_serializer(b.doc)))


def _json_serializer(doc: Any = None) -> Any:
    """The prov package's PROV-JSON serializer, taken directly: its registry would import every serializer (RDF
    and XML among them) on first use."""
    from prov.serializers.provjson import ProvJSONSerializer

    if doc is None:
        return ProvJSONSerializer()
    import io

    out = io.StringIO()
    ProvJSONSerializer(doc).serialize(out)
    return out.getvalue()


# Validation: the prov package reads the document; the lineage rules are ours.

SECTIONS = ("entity", "activity", "agent")
# For each relation: its id-valued attributes and the kind of record each must name.
RELATIONS: dict[str, dict[str, str]] = {
    "used": {"prov:activity": "activity", "prov:entity": "entity"},
    "wasGeneratedBy": {"prov:entity": "entity", "prov:activity": "activity"},
    "wasDerivedFrom": {"prov:generatedEntity": "entity", "prov:usedEntity": "entity", "prov:activity": "activity",
                       "prov:generation": "wasGeneratedBy", "prov:usage": "used"},
    "wasAssociatedWith": {"prov:activity": "activity", "prov:agent": "agent", "prov:plan": "entity"},
    "hadMember": {"prov:collection": "entity", "prov:entity": "entity"},
    "wasAttributedTo": {"prov:entity": "entity", "prov:agent": "agent"},
    "actedOnBehalfOf": {"prov:delegate": "agent", "prov:responsible": "agent", "prov:activity": "activity"},
    "wasInformedBy": {"prov:informed": "activity", "prov:informant": "activity"},
    "wasStartedBy": {"prov:activity": "activity", "prov:trigger": "entity", "prov:starter": "activity"},
    "wasEndedBy": {"prov:activity": "activity", "prov:trigger": "entity", "prov:ender": "activity"},
    "wasInvalidatedBy": {"prov:entity": "entity", "prov:activity": "activity"},
    "specializationOf": {"prov:specificEntity": "entity", "prov:generalEntity": "entity"},
    "alternateOf": {"prov:alternate1": "entity", "prov:alternate2": "entity"},
}


def records(doc: Mapping[str, Any], section: str) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(pointer, id, attributes) of each record of a section (PROV-JSON holds a list when an id repeats)."""
    for ident, value in dict_at(doc, section).items():
        items = value if isinstance(value, list) else [value]
        for i, attrs in enumerate(items):
            at = pointer(section, ident) + (pointer(i) if isinstance(value, list) else "")
            yield at, ident, attrs if isinstance(attrs, dict) else {}


def types_of(attrs: Mapping[str, Any]) -> set[str]:
    value = attrs.get("prov:type")
    values = value if isinstance(value, list) else [value]
    return {str(v.get("$")) if isinstance(v, dict) else str(v) for v in values if v is not None}


def check_prov(text: str, doc: Any) -> list[Problem]:
    """Read the document with the prov package (a document it cannot read is a problem), then the lineage rules."""
    import io
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. a key repeated in an object: which value counts is not clear
            _json_serializer().deserialize(io.StringIO(text))
    except Exception as exc:  # the prov package raises many kinds; any of them means unreadable
        return [Problem(PROV_FILE, "", "PROV_UNREADABLE", f"the prov package cannot read it: {type(exc).__name__}: "
                        f"{str(exc)[:200]}")]
    if not isinstance(doc, dict):
        return [Problem(PROV_FILE, "", "PROV_UNREADABLE", "not a PROV-JSON object")]
    return undeclared(doc) + lineage(doc) + times(doc)


def undeclared(doc: Mapping[str, Any]) -> list[Problem]:
    """Every id a relation names is declared, as the kind of record the relation needs."""
    declared = {s: set(dict_at(doc, s)) for s in (*SECTIONS, *RELATIONS)}
    out = []
    for section in doc:
        if section in ("prefix", *SECTIONS):
            continue
        if section not in RELATIONS:
            out.append(Problem(PROV_FILE, pointer(section), "PROV_RELATION", f"{section} is not a relation kfm "
                               "knows how to check"))
            continue
        for at, _, attrs in records(doc, section):
            for key, kind in RELATIONS[section].items():
                value = attrs.get(key)
                if value is not None and str(value) not in declared[kind]:
                    out.append(Problem(PROV_FILE, at + pointer(key), "PROV_UNDECLARED",
                                       f"{value} is not a declared {kind}"))
    return out


def lineage(doc: Mapping[str, Any]) -> list[Problem]:
    """Every PROCESSED artifact derives from RAW (or a collection of RAW) through an activity that used it and
    generated the artifact; a carried one instead names the run that made it."""
    kinds = {ident: types_of(attrs) for _, ident, attrs in records(doc, "entity")}
    members: dict[str, set[str]] = {}
    for _, _, a in records(doc, "hadMember"):
        members.setdefault(str(a.get("prov:collection")), set()).add(str(a.get("prov:entity")))
    used = {(str(a.get("prov:activity")), str(a.get("prov:entity"))) for _, _, a in records(doc, "used")}
    made = {(str(a.get("prov:entity")), str(a.get("prov:activity"))) for _, _, a in records(doc, "wasGeneratedBy")}

    def raw(ident: str) -> bool:
        inner = members.get(ident, set())
        return RAW in kinds.get(ident, set()) or (bool(inner) and all(RAW in kinds.get(m, set()) for m in inner))

    derived = {str(a.get("prov:generatedEntity")) for _, _, a in records(doc, "wasDerivedFrom")
               if (str(a.get("prov:generatedEntity")), str(a.get("prov:activity"))) in made
               and (str(a.get("prov:activity")), str(a.get("prov:usedEntity"))) in used
               and raw(str(a.get("prov:usedEntity")))}
    out = []
    for at, ident, attrs in records(doc, "entity"):
        if PROCESSED not in types_of(attrs) or ident in derived:
            continue
        if "kfm:carriedFrom" in attrs:
            if not PROV_REF_RE.fullmatch(str(attrs.get("kfm:provenance", ""))):
                out.append(Problem(PROV_FILE, at, "PROV_LINEAGE", f"the carried artifact {ident} does not link the "
                                   "run that made it (kfm:provenance prov://<run id>)"))
            continue
        out.append(Problem(PROV_FILE, at, "PROV_LINEAGE", f"{ident} does not derive from RAW through an activity "
                           "that used the RAW and generated it"))
    return out


def times(doc: Mapping[str, Any]) -> list[Problem]:
    """Each activity ends after it starts; generation and usage fall within their activity; an entity is used
    only after it was generated. A time that is not an ISO 8601 instant is a problem too."""
    out: list[Problem] = []
    spans: dict[str, tuple[datetime | None, datetime | None]] = {}
    for at, ident, a in records(doc, "activity"):
        start, end = _time(a, "prov:startTime", at, out), _time(a, "prov:endTime", at, out)
        spans[ident] = (start, end)
        if start and end and end < start:
            out.append(Problem(PROV_FILE, at + pointer("prov:endTime"), "PROV_TIME", "the activity ends before it "
                               "starts"))
    generated: dict[str, datetime] = {}
    for section in ("wasGeneratedBy", "used"):
        for at, _, a in records(doc, section):
            t = _time(a, "prov:time", at, out)
            start, end = spans.get(str(a.get("prov:activity")), (None, None))
            if t and ((start and t < start) or (end and t > end)):
                out.append(Problem(PROV_FILE, at + pointer("prov:time"), "PROV_TIME", f"the time of this {section} "
                                   "is outside its activity's start and end"))
            if t and section == "wasGeneratedBy":
                generated[str(a.get("prov:entity"))] = t
            elif t and str(a.get("prov:entity")) in generated and t < generated[str(a.get("prov:entity"))]:
                out.append(Problem(PROV_FILE, at + pointer("prov:time"), "PROV_TIME", "the entity is used before it "
                                   "was generated"))
    return out


def _time(attrs: Mapping[str, Any], key: str, at: str, out: list[Problem]) -> datetime | None:
    """The instant of a time attribute (None when absent); a problem when it is not one."""
    value = attrs.get(key)
    if value is None:
        return None
    try:
        t = instant(str(value))
    except ValueError:
        t = None
    if t is None or t.tzinfo is None:
        out.append(Problem(PROV_FILE, at + pointer(key), "PROV_TIME", f"{value!r} is not an instant with an offset"))
        return None
    return t
