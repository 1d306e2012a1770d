"""Just enough JSON Schema (the subset bridge.ops.openapi uses) to check answers against the document."""

from __future__ import annotations

from typing import Any

TYPES = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool,
         "null": type(None)}


def check(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$") -> None:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        check(value, root["components"]["schemas"][name], root, where)
        return
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(isinstance(value, TYPES[k]) and not (k in ("integer", "number") and isinstance(value, bool))
                 for k in kinds)
        assert ok, f"{where}: {value!r} is not {kinds}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            assert name in value, f"{where}: missing {name}"
        for name, item in value.items():
            if name in props:
                check(item, props[name], root, f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                raise AssertionError(f"{where}: unexpected property {name}")
            elif isinstance(schema.get("additionalProperties"), dict):
                check(item, schema["additionalProperties"], root, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for n, item in enumerate(value):
            check(item, schema["items"], root, f"{where}[{n}]")


def check_response(document: dict[str, Any], path: str, method: str, status: int, body: Any) -> None:
    operation = document["paths"][path][method]
    answer = operation["responses"][str(status)]
    check(body, answer["content"]["application/json"]["schema"], document)
