"""Where the catalogs live in a version folder, and the identifiers they share: EvidenceRefs (DESIGN.md) and the
roll-up activity's IRI, one spelling each."""

from __future__ import annotations

import re

CATALOG_DIR = "catalog"
DCAT_FILE = "catalog/dcat.jsonld"
COLLECTION_FILE = "catalog/stac/collection.json"
ITEMS_DIR = "catalog/stac/items"
PROV_FILE = "catalog/prov.json"

ARTIFACT_PREFIX = "kfm://artifact/"
ROLLUP_PREFIX = "kfm://rollup/"
ARTIFACT_REF_RE = re.compile(r"kfm://artifact/(sha256:[0-9a-f]{64})")
DCAT_REF_RE = re.compile(r"dcat://(?P<slug>[a-z0-9_]+)@(?P<version>[^#/]+)(?:#(?P<fragment>.+))?")
STAC_REF_RE = re.compile(r"stac://(?P<slug>[a-z0-9_]+)@(?P<version>[^/]+)/items/(?P<item>[^/]+)")
PROV_REF_RE = re.compile(r"prov://(?P<run>kfm://run/.+)")
ROLLUP_RE = re.compile(r"kfm://rollup/(?P<slug>[a-z0-9_]+)/(?P<version>[^/]+)")
# The schemes of links the catalogs make; any other IRI in a catalog is a vocabulary term, not a link.
LINK_SCHEMES = ("kfm://", "dcat://", "stac://", "prov://")


def item_file(partition: str) -> str:
    return f"{ITEMS_DIR}/{partition}.json"


def artifact_ref(digest: str) -> str:
    return ARTIFACT_PREFIX + digest


def collection_id(slug: str, version: str) -> str:
    return f"{slug}@{version}"


def dataset_ref(slug: str, version: str, fragment: str = "") -> str:
    return f"dcat://{slug}@{version}" + (f"#{fragment}" if fragment else "")


def stac_ref(slug: str, version: str, item: str) -> str:
    return f"stac://{collection_id(slug, version)}/items/{item}"


def prov_ref(run_id: str) -> str:
    return f"prov://{run_id}"


def rollup_iri(slug: str, version: str) -> str:
    """The roll-up activity of a version: the same on every clone (its run id is not), so DCAT can name it."""
    return f"{ROLLUP_PREFIX}{slug}/{version}"


def multihash(digest: str) -> str:
    """A sha256 digest as the STAC file extension's checksum: a multihash (0x12 sha2-256, 0x20 bytes) in hex."""
    return "1220" + digest.removeprefix("sha256:")


def digest_of_multihash(value: str) -> str | None:
    return "sha256:" + value[4:] if re.fullmatch(r"1220[0-9a-f]{64}", value) else None
