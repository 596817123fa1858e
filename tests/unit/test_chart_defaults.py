"""The chart's default requests and limits are the ones docs/scale.md derives from the benchmark."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_charts_resources_are_the_documented_ones() -> None:
    values = yaml.safe_load((ROOT / "helm" / "druid-access-operator" / "values.yaml").read_text())
    resources = values["resources"]
    doc = (ROOT / "docs" / "scale.md").read_text()
    documented = dict(re.findall(r"^\| (memory request|memory limit|CPU request) \| (\S+) \|", doc, re.M))
    assert documented == {
        "memory request": resources["requests"]["memory"],
        "memory limit": resources["limits"]["memory"],
        "CPU request": resources["requests"]["cpu"],
    }
