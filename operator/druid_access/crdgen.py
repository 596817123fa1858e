"""Render CustomResourceDefinitions from the pydantic models in ``models``.

Pydantic emits JSON Schema with ``$ref``s, ``anyOf`` for optional fields and titles;
Kubernetes wants a structural OpenAPI v3 schema: every node typed, no references, no
``additionalProperties`` beside ``properties``. ``to_structural`` does that translation and
nothing else, so the models stay the only place where the API is defined.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from druid_access.models import GROUP, KINDS, VERSION, KindInfo, ResourceStatus

_DROP = {"title", "$defs"}
_PRINTER_COLUMNS = [
    {
        "name": "Remote",
        "type": "string",
        "jsonPath": ".status.remoteName",
        "description": "Name of the remote object",
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        "description": "Whether the remote object matches the spec",
    },
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        "description": "Why it is or is not ready",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _resolve(node: Any, defs: Mapping[str, Any]) -> Any:
    """Inline ``$ref``s and collapse ``anyOf [X, null]`` into X (absent means unset)."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        target = _resolve(defs[ref.rsplit("/", 1)[-1]], defs)
        node = {**target, **node}  # siblings (description, default) override the target
    any_of = node.get("anyOf")
    if any_of is not None:
        branches = [b for b in any_of if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express anyOf with {len(branches)} non-null branches")
        del node["anyOf"]
        node = {**_resolve(branches[0], defs), **node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: _resolve(sub, defs) for name, sub in value.items()}
        elif key == "default" and value is None:
            continue
        else:
            out[key] = _resolve(value, defs)
    if out.get("type") == "object":
        extra = out.pop("additionalProperties", None)
        if "properties" not in out and extra not in (None, False):
            # A free-form map (decoratorOptions): keep what the user wrote.
            out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("format") == "date-time":
        out["type"] = "string"
    return out


def to_structural(model: type[Any]) -> dict[str, Any]:
    """A model's JSON Schema as a structural OpenAPI v3 schema."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.get("$defs", {})
    resolved: dict[str, Any] = _resolve(schema, defs)
    resolved.setdefault("type", "object")
    return resolved


def render(info: KindInfo) -> dict[str, Any]:
    """The CRD manifest for one kind."""
    spec_schema = to_structural(info.spec)
    spec_schema["description"] = info.spec.__doc__.strip() if info.spec.__doc__ else info.description
    status_schema = to_structural(ResourceStatus)
    status_schema["description"] = "Observed state, written by the operator."
    schema = {
        "type": "object",
        "description": info.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            # The API server allows nothing but the type here (metadata is its own schema).
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.crd_name},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": [info.short_name],
                "categories": ["druid"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def dump(info: KindInfo) -> str:
    header = "# Generated by `druid-access crds` from operator/druid_access/models.py. Do not edit.\n"
    body = yaml.safe_dump(render(info), sort_keys=False, width=100, allow_unicode=True)
    return header + body


def filename(info: KindInfo) -> str:
    return f"{GROUP}_{info.plural}.yaml"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for info in KINDS:
        path = directory / filename(info)
        path.write_text(dump(info), encoding="utf-8")
        paths.append(path)
    return paths


def check(directory: Path) -> list[str]:
    """File names under ``directory`` that are missing or differ from what the models render."""
    stale = []
    for info in KINDS:
        path = directory / filename(info)
        if not path.is_file() or path.read_text(encoding="utf-8") != dump(info):
            stale.append(filename(info))
    return stale
