"""The JSON Schemas shipped as package data: valid schemas, current generated validators that agree with
jsonschema on every example, and a registry that the workflow of pre-commit relies on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from conftest import EXAMPLES, PROJECT
from kfm_gitops import _yaml, schema

NAMES = list(schema.GENERATED)


@pytest.mark.parametrize("name", schema.SCHEMA_NAMES)
def test_schema_is_a_valid_2020_12_schema(name: str) -> None:
    s = schema.load_schema(name)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(s)
    Draft202012Validator.check_schema(schema.bundle(name))


@pytest.mark.parametrize("name", NAMES)
def test_generated_validator_is_current(name: str) -> None:
    path = PROJECT / "kfm_gitops" / "_generated" / f"{name}_validator.py"
    assert path.read_text(encoding="utf-8") == schema.generated_source(name), (
        f"{path.name} is stale: run `python tools/gen_validators.py`")


def walk(node: Any) -> list[dict[str, Any]]:
    """Every subschema of a schema (not the property names or other data inside it)."""
    if not isinstance(node, dict):
        return []
    out: list[dict[str, Any]] = [node]
    for key in ("properties", "$defs"):
        for sub in node.get(key, {}).values():
            out.extend(walk(sub))
    for key in ("additionalProperties", "items", "if", "then"):
        out.extend(walk(node.get(key)))
    for key in ("allOf", "anyOf"):
        for sub in node.get(key, []):
            out.extend(walk(sub))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_schemas_use_only_keywords_both_validators_read_alike(name: str) -> None:
    """The generated validator reads the schema as draft-07; these keywords mean the same in both drafts."""
    allowed = {"$schema", "$id", "$ref", "$defs", "title", "description", "type", "properties", "required",
               "additionalProperties", "items", "enum", "const", "pattern", "minLength", "maxLength", "minItems",
               "maxItems", "uniqueItems", "minimum", "maximum", "minProperties", "allOf", "anyOf", "if", "then",
               "default", "x-kfm-message"}
    for node in walk(schema.bundle(name)):
        if "$ref" in node:  # draft-07 ignores a $ref's siblings
            assert set(node) <= {"$ref", "description", "x-kfm-message"}, node
        unknown = set(node) - allowed
        assert not unknown, f"keywords {unknown} in {name}"


def documents() -> list[tuple[str, str, Path]]:
    docs: list[tuple[str, str, Path]] = []
    for p in sorted((EXAMPLES / "valid").glob("*.yml")) + sorted((EXAMPLES / "invalid").glob("*.yml")):
        docs.append(("plan", p.parent.name, p))
    for p in sorted((PROJECT / "datasets").glob("*/dataset.yaml")):
        docs.append(("dataset", "valid", p))
    for p in sorted((PROJECT / "datasets").glob("*/pipeline.yaml")):
        docs.append(("pipeline", "valid", p))
    docs.append(("kfm", "valid", PROJECT / "kfm.yaml"))
    return docs


def mutations(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Variants of a valid document, most of them invalid, to exercise both validators on more than examples."""
    out = []
    for key in list(data):
        dropped = dict(data)
        del dropped[key]
        out.append(dropped)
        bad: Any
        for bad in (None, 0, True, "x", [], {}, 1.5):
            changed = json.loads(json.dumps(data))
            changed[key] = bad
            out.append(changed)
    out.append({**data, "unexpected": 1})
    return out


@pytest.mark.parametrize(("name", "kind", "path"), documents(), ids=lambda v: getattr(v, "name", v))
def test_generated_validator_agrees_with_jsonschema(name: str, kind: str, path: Path) -> None:
    doc = _yaml.load(path)
    if isinstance(doc, list):
        return  # not YAML at all: neither validator sees it
    validator = schema._validator(name)
    for data in [doc.data, *mutations(doc.data)]:
        fast_ok = schema._fast_check(name, data) is None
        slow_ok = validator.is_valid(data)
        assert fast_ok == slow_ok, (path.name, data)
    if kind == "valid":
        assert schema._fast_check(name, doc.data) is None


def test_mutations_really_fail() -> None:
    doc = _yaml.load(EXAMPLES / "valid" / "minimal.yml")
    assert isinstance(doc, _yaml.Document)
    verdicts = [schema._fast_check("plan", d) is None for d in mutations(doc.data)]
    assert verdicts.count(False) > len(verdicts) * 0.8
