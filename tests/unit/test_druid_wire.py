"""The Coordinator's wire models: what Druid writes as null."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from druid_access.clients.druid_wire import AuthenticatorUser, AuthorizerUser


def test_a_null_collection_reads_as_empty_and_every_other_value_as_given() -> None:
    assert AuthorizerUser.model_validate({"name": "a", "roles": None}).roles == frozenset()
    assert AuthorizerUser.model_validate({"name": "a", "roles": ["x", "y"]}).roles == {"x", "y"}
    assert AuthorizerUser.model_validate({"name": "a"}).roles == frozenset()
    # Null stays null where the field is not a collection: no credentials yet.
    assert AuthenticatorUser.model_validate({"name": "a", "credentials": None}).credentials is None
    with pytest.raises(ValidationError):
        AuthorizerUser.model_validate({"name": None, "roles": []})
