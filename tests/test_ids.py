"""Relay global ids: base64url of "<TypeName>:<primary key>" without padding, read back."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from gql_service.graphql.ids import encode_id, parse_id
from gql_service.models import MAX_ID

TYPE_NAMES = st.sampled_from(["Opportunity", "Quote", "OpportunityClose", "QuoteClose", "X"])


@given(TYPE_NAMES, st.integers(min_value=0, max_value=MAX_ID))
def test_an_id_is_base64url_of_its_type_and_key_and_reads_back(type_name: str, pk: int) -> None:
    expected = base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")
    assert encode_id(type_name, pk) == expected
    assert parse_id(expected) == (type_name, pk)


@given(st.text(max_size=40))
def test_any_type_name_encodes_as_base64url(type_name: str) -> None:
    expected = base64.urlsafe_b64encode(f"{type_name}:7".encode()).decode().rstrip("=")
    assert encode_id(type_name, 7) == expected
