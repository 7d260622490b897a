"""JSON Schemas shipped as package data, and validation that reports findings at file:line:col.

Valid documents, the common case on a pre-commit hook, are checked by a validator generated from the schema ahead
of time (``_generated/``; ``tools/gen_validators.py`` writes it, a test proves it current and in agreement with
jsonschema). Only a document that fails is run through jsonschema, which lists every error with its path.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import json
from functools import cache
from importlib import resources
from typing import Any

from kfm_gitops._yaml import Document, JsonPath
from kfm_gitops.findings import Finding

# Documents people write (with generated validators for the hook path), then evidence records kfm writes.
SCHEMA_NAMES = ("common", "plan", "dataset", "pipeline", "kfm", "acquisition", "receipt", "qa", "quarantine")
GENERATED = ("plan", "dataset", "pipeline", "kfm")
_COMMON_REF = "common.schema.json#/$defs/"


@cache
def load_schema(name: str) -> dict[str, Any]:
    text = resources.files("kfm_gitops").joinpath("schemas", f"{name}.schema.json").read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def bundle(name: str) -> dict[str, Any]:
    """One self-contained schema: the definitions it uses from common.schema.json copied in."""
    schema = copy.deepcopy(load_schema(name))
    common = load_schema("common")["$defs"]
    defs: dict[str, Any] = {}

    def rewrite(node: Any, in_common: bool) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                def_name = None
                if ref.startswith(_COMMON_REF):
                    def_name = ref[len(_COMMON_REF):]
                elif in_common and ref.startswith("#/$defs/"):
                    def_name = ref[len("#/$defs/"):]
                if def_name is not None:
                    if def_name in schema.get("$defs", {}) and not in_common:
                        raise ValueError(f"schema {name} defines {def_name} itself and also takes it from common")
                    if def_name not in defs:
                        defs[def_name] = None  # placeholder against recursion
                        defs[def_name] = rewrite(copy.deepcopy(common[def_name]), True)
                    node = {**node, "$ref": f"#/$defs/{def_name}"}
            return {k: rewrite(v, in_common) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v, in_common) for v in node]
        return node

    out: dict[str, Any] = rewrite(schema, False)
    out["$defs"] = dict(sorted({**out.get("$defs", {}), **defs}.items()))
    return out


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    registry: Registry[Any] = Registry()
    for other in SCHEMA_NAMES:
        s = load_schema(other)
        registry = registry.with_resource(s["$id"], Resource.from_contents(s))
    return Draft202012Validator(load_schema(name), registry=registry)


def _fast_check(name: str, data: Any) -> str | None:
    """None when valid; else the generated validator's first complaint."""
    module = importlib.import_module(f"kfm_gitops._generated.{name}_validator")
    try:
        module.validate(data)
    except Exception as exc:  # the generated code's JsonSchemaValueException
        return str(exc)
    return None


def validate_data(data: Any, name: str) -> list[str]:
    """Schema errors of a document kfm itself wrote or reads back (no positions): ``path: message`` each."""
    return [f"{_dotted(tuple(e.absolute_path))}: {e.message}" for e in _validator(name).iter_errors(data)]


def validate(doc: Document, name: str) -> list[Finding]:
    complaint = _fast_check(name, doc.data)
    if complaint is None:
        return []
    findings = errors_to_findings(doc, name)
    if not findings:
        # The two validators disagree: fail closed with what the fast one said.
        findings = [Finding("SCHEMA_INVALID", complaint, doc.locate(()))]
    return findings


_TYPE_WORDS = {"array": "list", "object": "mapping", "null": "null"}


def _describe_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _dotted(path: JsonPath) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def errors_to_findings(doc: Document, name: str) -> list[Finding]:
    validator = _validator(name)
    findings: list[Finding] = []
    for err in validator.iter_errors(doc.data):
        findings.extend(_translate(doc, err))
    # One message per place and code is enough.
    seen: set[tuple[str, str]] = set()
    unique: list[Finding] = []
    for f in findings:
        k = (str(f.location), f.message)
        if k not in seen:
            seen.add(k)
            unique.append(f)
    return unique


def _translate(doc: Document, err: Any) -> list[Finding]:
    path: JsonPath = tuple(err.absolute_path)
    where = _dotted(path)
    schema = err.schema if isinstance(err.schema, dict) else {}
    custom = schema.get("x-kfm-message")
    kind = err.validator
    if kind == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        out = []
        for key in err.instance:
            if key in known:
                continue
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = (f"did you mean '{close[0]}'?" if close
                    else f"allowed keys: {', '.join(known)}" if known else "this mapping takes no keys")
            out.append(Finding("SCHEMA_UNKNOWN_KEY", f"unknown key '{key}' in {where}",
                               doc.locate((*path, key), key=True), hint=hint))
        return out
    if kind == "required":
        instance = err.instance if isinstance(err.instance, dict) else {}
        allowed = set(schema.get("properties", {}))
        extras = [str(k) for k in instance if k not in allowed]
        # A misspelt key is reported once, as unknown with its "did you mean", not again as missing.
        missing = [k for k in err.validator_value
                   if k not in instance and not difflib.get_close_matches(k, extras, n=1, cutoff=0.6)]
        return [Finding("SCHEMA_MISSING_KEY", f"{where} is missing the required key '{k}'",
                        doc.locate(path, key=True), hint=_property_hint(schema, k)) for k in missing]
    loc = doc.locate(path)
    if kind == "type":
        expected = err.validator_value
        words = [_TYPE_WORDS.get(str(t), str(t)) for t in (expected if isinstance(expected, list) else [expected])]
        exp = " or ".join(words)
        return [Finding("SCHEMA_TYPE", f"{where} must be {_article(exp)}, not {_article(_describe_type(err.instance))}",
                        loc, hint=custom)]
    if kind == "const":
        return [Finding("SCHEMA_VALUE", f"{where} must be {json.dumps(err.validator_value)}", loc, hint=custom)]
    if kind == "enum":
        choices = ", ".join(str(c) for c in err.validator_value)
        close = difflib.get_close_matches(str(err.instance), [str(c) for c in err.validator_value], n=1)
        enum_hint = f"did you mean '{close[0]}'?" if close else custom
        return [Finding("SCHEMA_VALUE", f"{where} is {json.dumps(err.instance)}; it must be one of: {choices}",
                        loc, hint=enum_hint)]
    if kind == "pattern":
        return [Finding("SCHEMA_FORMAT", f"{where} {json.dumps(err.instance)} is not well-formed",
                        loc, hint=custom or f"it must match {err.validator_value}")]
    if kind in ("minItems", "minLength"):
        what = "empty" if err.validator_value == 1 else "too short"
        return [Finding("SCHEMA_VALUE", f"{where} is {what}", loc, hint=custom)]
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return [Finding("SCHEMA_VALUE", f"{where} is {err.instance}; {err.message.split(' is ', 1)[-1]}", loc,
                        hint=custom)]
    if kind == "uniqueItems":
        return [Finding("SCHEMA_VALUE", f"{where} has repeated items", loc, hint=custom)]
    return [Finding("SCHEMA_INVALID", f"{where}: {err.message}", loc, hint=custom)]


def _article(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _property_hint(schema: dict[str, Any], key: str) -> str | None:
    prop = schema.get("properties", {}).get(key)
    if isinstance(prop, dict):
        msg = prop.get("x-kfm-message")
        if isinstance(msg, str):
            return msg
    return None


def generated_source(name: str) -> str:
    """The source of the ahead-of-time validator for schema ``name`` (draft-07 semantics of the same keywords)."""
    import fastjsonschema

    schema = bundle(name)
    schema.pop("$schema", None)
    schema.pop("$id", None)
    code: str = fastjsonschema.compile_to_code(schema)
    header = f"# Generated by tools/gen_validators.py from schemas/{name}.schema.json: do not edit.\n# ruff: noqa\n"
    return header + code
