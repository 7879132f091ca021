"""Each mutation's error union lists exactly the codes its service documents it can return."""

from __future__ import annotations

import re

from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLUnionType

from gql_service import bulk_closing, line_services, quote_services, services
from gql_service.graphql.schema import build_schema


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _error_type(code: str) -> str:
    return "".join(part.title() for part in code.split("_")) + "Error"


def test_every_error_union_matches_the_codes_its_service_documents() -> None:
    schema = build_schema()._schema
    mutation = schema.mutation_type
    assert mutation is not None
    mismatches = {}
    for name, field in mutation.fields.items():
        payload = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
        assert isinstance(payload, GraphQLObjectType)
        errors = payload.fields["errors"].type
        while isinstance(errors, GraphQLNonNull | GraphQLList):
            errors = errors.of_type
        assert isinstance(errors, GraphQLUnionType)
        service = next(
            getattr(module, _snake(name))
            for module in (services, quote_services, bulk_closing, line_services)
            if hasattr(module, _snake(name))
        )
        documented = re.search(r"Codes:\s*([A-Z_,\s]+)\.", service.__doc__ or "")
        assert documented, f"{service.__name__} documents no codes"
        expected = {_error_type(code.strip()) for code in documented.group(1).split(",")}
        actual = {t.name for t in errors.types}
        if expected != actual:
            mismatches[name] = (sorted(expected), sorted(actual))
    assert mismatches == {}
