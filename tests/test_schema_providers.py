"""Structured output (#30) at the provider layer: the schema a caller sets reaches the request each
adapter sends, in that provider's own form, and the JSON comes back as the answer's text."""

from __future__ import annotations

import pytest

from streamchat.config import parse_settings
from streamchat.errors import UsageError
from streamchat.schema_request import ResponseSchema
from streamchat.service import ChatSession, Overrides

CITY = {"type": "object", "properties": {"city": {"type": "string"}, "pop": {"type": "integer"}},
        "required": ["city", "pop"], "additionalProperties": False}


def test_a_schema_set_in_the_overrides_is_on_every_request_of_the_session():
    settings = parse_settings({"providers": {"schemas": {"type": "openai", "api_key": "k"}}})
    wanted = ResponseSchema(CITY, name="city")
    session = ChatSession(settings, Overrides(model="schemas:gpt-4o-mini", schema=wanted))
    assert session.request("largest city of Peru").schema is wanted
    session.set_overrides(Overrides(model="schemas:gpt-4o-mini"))
    assert session.request("and now prose").schema is None


def test_a_response_schema_is_a_json_object_with_a_name_every_provider_takes():
    assert ResponseSchema.named(CITY).name == "answer"
    assert ResponseSchema.named({**CITY, "title": "Big City!"}).name == "Big_City_"
    assert ResponseSchema.named(CITY, "order").name == "order"
    with pytest.raises(UsageError, match="JSON object"):
        ResponseSchema(["not", "a", "schema"])  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="letters, digits"):
        ResponseSchema(CITY, name="has space")
