"""The committed CRDs are what the models render, and they are valid structural schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from druid_access import crdgen
from druid_access.models import KINDS, KindInfo

ROOT = Path(__file__).resolve().parents[2]


def test_committed_crds_match_models() -> None:
    assert crdgen.check(ROOT / "crds") == [], "crds/ is stale: run `make crds`"


def test_check_reports_a_changed_file(tmp_path: Path) -> None:
    crdgen.write(tmp_path)
    target = tmp_path / crdgen.filename(KINDS[0])
    target.write_text(target.read_text() + "# edited\n")
    assert crdgen.check(tmp_path) == [crdgen.filename(KINDS[0])]


def test_one_file_per_kind() -> None:
    files = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert files == sorted(crdgen.filename(info) for info in KINDS)


def _walk(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        found += _walk(sub, f"{path}.{name}")
    if "items" in node:
        found += _walk(node["items"], f"{path}[]")
    return found


@pytest.mark.parametrize("info", KINDS, ids=lambda i: i.kind)
def test_schema_is_structural_and_documented(info: KindInfo) -> None:
    crd = yaml.safe_load(crdgen.dump(info))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    undocumented = []
    for path, node in _walk(schema, ""):
        text = yaml.safe_dump(node)
        assert "$ref" not in text and "anyOf" not in text, path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), f"untyped {path}"
        if "properties" in node:
            assert "additionalProperties" not in node, path
        is_field = not path.endswith("[]") and path != ".metadata"
        if is_field and not node.get("description"):
            undocumented.append(path)
    assert undocumented == [], f"fields without description: {undocumented}"


@pytest.mark.parametrize("info", KINDS, ids=lambda i: i.kind)
def test_names_and_columns(info: KindInfo) -> None:
    crd = crdgen.render(info)
    names = crd["spec"]["names"]
    assert names["categories"] == ["druid"]
    assert names["shortNames"] == [info.short_name]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Remote", "Ready", "Reason", "Age"]


def test_secret_material_has_no_inline_field() -> None:
    """Secrets enter a spec only as {name, key} references: no field may hold a value."""
    forbidden = {"password", "passphrase", "sockPassword", "key", "cert", "ca"}
    for info in KINDS:
        schema = crdgen.render(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        nodes = _walk(schema["properties"]["spec"], "spec")
        refs = {path for path, node in nodes if set(node.get("properties", {})) == {"name", "key"}}
        for path, node in nodes:
            parent, _, leaf = path.rpartition(".")
            if leaf in forbidden and parent not in refs:
                assert node["type"] == "object", f"{info.kind} {path} must be a Secret reference"
                props = set(node["properties"])
                assert props <= {"secretKeyRef", "generate", "name", "key"}, path
