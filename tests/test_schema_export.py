"""schema.graphql at the repository root is the printed schema, kept identical."""

from pathlib import Path

from gql_service.cli import export_schema_text

ROOT = Path(__file__).resolve().parent.parent


def test_schema_graphql_matches_the_schema_the_code_builds() -> None:
    exported = (ROOT / "schema.graphql").read_text()
    assert exported == export_schema_text(), (
        "schema.graphql is out of date: run `make schema` and commit the result"
    )
