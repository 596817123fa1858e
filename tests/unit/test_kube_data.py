"""Secret values as the operator receives them: text, or a clear word about why not."""

from __future__ import annotations

import base64

import pytest

from druid_access.kube import SecretMissing, _secret_data
from druid_access.reconcile import _why


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def test_a_value_that_is_not_text_is_reported_as_such_not_as_missing() -> None:
    data = _secret_data(
        {
            "metadata": {"name": "pw", "namespace": "ns", "resourceVersion": "7"},
            "data": {"password": _b64(b"\xff\xfe\x00binary"), "ok": _b64("p\u00e4ss".encode())},
        }
    )
    with pytest.raises(SecretMissing) as binary:
        data.value("password")
    assert str(binary.value) == "the value under key 'password' of Secret ns/pw is not UTF-8 text"
    with pytest.raises(SecretMissing) as absent:
        data.value("nothing")
    assert str(absent.value) == "Secret ns/pw has no key 'nothing'"
    assert data.value("ok").get_secret_value() == "p\u00e4ss"
    assert "binary" not in repr(data)


def _body(status: dict[str, object], generation: int = 1) -> dict[str, object]:
    return {"metadata": {"generation": generation}, "status": status}


def test_why_says_secret_changed_only_when_a_synced_secret_version_differs() -> None:
    assert _why(_body({}), "pw@1") == "new resource"
    # Earlier passes failed (no Secret version was ever recorded): nothing is known to have changed.
    assert _why(_body({"observedGeneration": 1}), "pw@1") == "converging"
    assert _why(_body({"observedGeneration": 1, "secretVersion": "pw@1"}), "pw@1") == "converging"
    assert (
        _why(_body({"observedGeneration": 1, "secretVersion": "pw@1"}), "pw@2") == "referenced Secret changed"
    )
    assert _why(_body({"observedGeneration": 1}, generation=2), "pw@1") == "spec changed (generation 2)"
