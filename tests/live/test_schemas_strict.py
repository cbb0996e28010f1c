"""Every shipped JSON Schema compiles under a strict validator (the rules of Ajv's ``strict: true``).

Python's ``jsonschema`` accepts a keyword that means nothing where it stands (``required`` in a schema with no
``"type": "object"``); Ajv in strict mode refuses to compile such a schema, so a consumer in JavaScript could not
use ours. ``strict_problems`` checks Ajv's rules: no unknown keywords (strictSchema), a keyword that applies to
one type only needs that ``type`` in its schema or in one at the same place in the data (strictTypes), and a
``required`` name is defined in ``properties`` of the same or the parent schema (strictRequired). Checked against
Ajv 8 (``new Ajv2020({strict: true})``) on these files: the same schemas fail and pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import jsonschema
import pytest

from tests.conftest import REPO

SCHEMAS = sorted((REPO / "pipelines" / "schemas").glob("*.schema.json"))

ANNOTATIONS = {"$schema", "$id", "$ref", "$defs", "$comment", "$anchor", "$dynamicRef", "$dynamicAnchor",
               "$vocabulary", "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly",
               "contentMediaType", "contentEncoding", "contentSchema"}
TYPED = {
    "object": {"required", "properties", "patternProperties", "additionalProperties", "propertyNames",
               "minProperties", "maxProperties", "dependentRequired", "dependentSchemas", "unevaluatedProperties"},
    "array": {"items", "prefixItems", "contains", "minItems", "maxItems", "uniqueItems", "minContains",
              "maxContains", "unevaluatedItems"},
    "string": {"minLength", "maxLength", "pattern", "format"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"},
}
ANY_TYPE = {"type", "enum", "const", "allOf", "anyOf", "oneOf", "not", "if", "then", "else"}
KNOWN = ANNOTATIONS | ANY_TYPE | set().union(*TYPED.values())
SAME_PLACE = ("allOf", "anyOf", "oneOf", "not", "if", "then", "else")  # subschemas about the same data


def _types(schema: dict[str, Any]) -> Optional[set[str]]:
    declared = schema.get("type")
    if declared is None:
        return None
    names = {declared} if isinstance(declared, str) else set(declared)
    return names | ({"number"} if "integer" in names else set())


def strict_problems(schema: Any, where: str = "#", types: Optional[set[str]] = None,
                    parent: Optional[dict[str, Any]] = None) -> list[str]:
    """What Ajv's strict mode would refuse in ``schema`` (empty when it compiles)."""
    if not isinstance(schema, dict):
        return []
    problems = [f"{where}: unknown keyword {key!r}" for key in schema if key not in KNOWN]
    here = _types(schema) or types
    for type_name, keywords in TYPED.items():
        for key in sorted(keywords & schema.keys()):
            if here is None or type_name not in here:
                problems.append(f"{where}: {key!r} needs \"type\": \"{type_name}\"")
    defined = set(schema.get("properties", {})) | set((parent or {}).get("properties", {}))
    problems += [f"{where}: required {name!r} is not in properties" for name in schema.get("required", [])
                 if name not in defined]
    for key in SAME_PLACE:
        subs = schema.get(key)
        for i, sub in enumerate(subs if isinstance(subs, list) else [subs] if subs is not None else []):
            problems += strict_problems(sub, f"{where}/{key}" + (f"/{i}" if isinstance(subs, list) else ""),
                                        here, schema)
    children = [(f"properties/{k}", v) for k, v in schema.get("properties", {}).items()]
    children += [(f"$defs/{k}", v) for k, v in schema.get("$defs", {}).items()]
    children += [(key, schema[key]) for key in ("items", "additionalProperties", "contains", "propertyNames")
                 if key in schema]
    for path, sub in children:
        problems += strict_problems(sub, f"{where}/{path}", None, None)
    return problems


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.name)
def test_schema_compiles_under_a_strict_validator(path: Path) -> None:
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert strict_problems(schema) == []


@pytest.mark.parametrize("schema, problem", [
    ({"allOf": [{"$ref": "x"}], "required": ["a"]}, "'required' needs \"type\": \"object\""),
    ({"type": "object", "allOf": [{"then": {"required": ["a"]}}]}, "required 'a' is not in properties"),
    ({"type": "object", "properties": {"a": {"minimum": 1}}}, "'minimum' needs \"type\": \"number\""),
    ({"type": "object", "requried": ["a"]}, "unknown keyword 'requried'"),
])
def test_the_strict_check_catches_what_ajv_refuses(schema: dict[str, Any], problem: str) -> None:
    assert any(problem in found for found in strict_problems(schema)), strict_problems(schema)
