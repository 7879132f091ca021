"""Apollo's automatic persisted queries and trusted documents, on both engines."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from gql_service.app import create_app
from gql_service.persisted_queries import TrustedDocuments, TrustedDocumentsError
from gql_service.settings import Settings
from tests.operations import cost

COUNT = "query Count { competitors { totalCount } }"
NAMES = "query Names { competitors { nodes { name } } }"
CREATE = 'mutation Create { createCompetitor(input: {name: "Trey"}) { competitor { name } } }'


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def apq(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(document)}}


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
    await app.state.engine.dispose()


def code(body: dict[str, Any]) -> str:
    return str(body["errors"][0]["extensions"]["code"])


async def test_an_unknown_hash_is_not_found_then_registered_and_shared_by_instances(
    settings: Settings,
) -> None:
    async with app_client(settings) as first:
        unknown = (await first.post("/graphql", json={"extensions": apq(COUNT)})).json()
        registered = (
            await first.post("/graphql", json={"query": COUNT, "extensions": apq(COUNT)})
        ).json()
        again = (await first.post("/graphql", json={"extensions": apq(COUNT)})).json()
    async with app_client(settings) as second:
        elsewhere = (await second.post("/graphql", json={"extensions": apq(COUNT)})).json()
        over_get = await second.get(
            "/graphql",
            params={"extensions": json.dumps(apq(COUNT))},
            headers={"accept": "*/*"},
        )

    assert unknown["errors"][0]["message"] == "PersistedQueryNotFound"
    assert code(unknown) == "PERSISTED_QUERY_NOT_FOUND"
    assert "data" not in unknown or unknown["data"] is None
    expected = {"data": {"competitors": {"totalCount": 0}}, **cost(1)}
    assert registered == expected
    assert again == expected
    assert elsewhere == expected
    assert over_get.status_code == 200
    assert over_get.json() == expected


async def test_a_hash_only_get_that_is_unknown_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql",
        params={"extensions": json.dumps(apq(NAMES))},
        headers={"accept": "application/graphql-response+json"},
    )

    assert response.status_code == 400
    assert code(response.json()) == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_hash_that_does_not_match_the_text_is_refused(client: httpx.AsyncClient) -> None:
    body = (await client.post("/graphql", json={"query": NAMES, "extensions": apq(COUNT)})).json()
    after = (await client.post("/graphql", json={"extensions": apq(COUNT)})).json()

    assert code(body) == "PERSISTED_QUERY_HASH_MISMATCH"
    assert code(after) == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_document_that_fails_validation_is_not_registered(
    client: httpx.AsyncClient,
) -> None:
    bad = "{ nope }"
    first = (await client.post("/graphql", json={"query": bad, "extensions": apq(bad)})).json()
    again = (await client.post("/graphql", json={"extensions": apq(bad)})).json()

    assert first["errors"][0]["message"].startswith("Cannot query field")
    assert code(again) == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    "persisted",
    [{"version": 2, "sha256Hash": sha256(COUNT)}, {"version": 1, "sha256Hash": "abc"}, "x"],
    ids=["version", "short-hash", "not-an-object"],
)
async def test_a_malformed_persisted_query_extension_is_a_bad_request(
    client: httpx.AsyncClient, persisted: object
) -> None:
    body = (
        await client.post(
            "/graphql", json={"query": COUNT, "extensions": {"persistedQuery": persisted}}
        )
    ).json()

    assert code(body) == "BAD_REQUEST"


async def test_a_mutation_registered_by_hash_cannot_run_over_get(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/graphql", json={"query": CREATE, "extensions": apq(CREATE)})

    response = await client.get("/graphql", params={"extensions": json.dumps(apq(CREATE))})

    assert response.status_code == 405


async def test_with_apq_off_the_extension_is_not_supported(settings: Settings) -> None:
    async with app_client(replace(settings, apq_enabled=False)) as http:
        hash_only = (await http.post("/graphql", json={"extensions": apq(COUNT)})).json()
        with_text = (
            await http.post("/graphql", json={"query": COUNT, "extensions": apq(COUNT)})
        ).json()
        plain = (await http.post("/graphql", json={"query": COUNT})).json()

    assert hash_only["errors"][0]["message"] == "PersistedQueryNotSupported"
    assert code(hash_only) == "PERSISTED_QUERY_NOT_SUPPORTED"
    assert code(with_text) == "PERSISTED_QUERY_NOT_SUPPORTED"
    assert plain == {"data": {"competitors": {"totalCount": 0}}, **cost(1)}


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """A GraphQL Codegen style manifest ("sha256:" keys) plus a Relay style id."""
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps({f"sha256:{sha256(COUNT)}": COUNT, "relay-md5-id": CREATE}))
    return path


async def test_trusted_documents_run_by_id_hash_or_text_and_nothing_else(
    settings: Settings, manifest: Path
) -> None:
    async with app_client(replace(settings, trusted_documents=str(manifest))) as http:
        by_id = (await http.post("/graphql", json={"documentId": f"sha256:{sha256(COUNT)}"})).json()
        by_bare_id = (await http.post("/graphql", json={"documentId": sha256(COUNT)})).json()
        by_apq = (await http.post("/graphql", json={"extensions": apq(COUNT)})).json()
        by_text = (await http.post("/graphql", json={"query": COUNT})).json()
        other = (await http.post("/graphql", json={"query": NAMES})).json()
        registration = (
            await http.post("/graphql", json={"query": NAMES, "extensions": apq(NAMES)})
        ).json()
        unknown_id = (await http.post("/graphql", json={"documentId": "sha256:00"})).json()
        after = (await http.post("/graphql", json={"extensions": apq(NAMES)})).json()
        by_relay_id = (await http.post("/graphql", json={"documentId": "relay-md5-id"})).json()

    count = {"data": {"competitors": {"totalCount": 0}}, **cost(1)}
    assert by_id == by_bare_id == by_apq == by_text == count
    assert by_relay_id == {
        "data": {"createCompetitor": {"competitor": {"name": "Trey"}}},
        **cost(12),
    }
    assert code(other) == "PERSISTED_QUERY_NOT_ALLOWED"
    assert code(registration) == "PERSISTED_QUERY_NOT_ALLOWED"
    assert code(unknown_id) == "PERSISTED_QUERY_NOT_FOUND"
    assert code(after) == "PERSISTED_QUERY_NOT_FOUND"


async def test_without_trusted_documents_a_document_id_names_a_registered_hash(
    client: httpx.AsyncClient,
) -> None:
    missing = (await client.post("/graphql", json={"documentId": f"sha256:{sha256(COUNT)}"})).json()
    await client.post("/graphql", json={"query": COUNT, "extensions": apq(COUNT)})
    found = (await client.post("/graphql", json={"documentId": f"sha256:{sha256(COUNT)}"})).json()
    with_text = (
        await client.post("/graphql", json={"query": NAMES, "documentId": sha256(COUNT)})
    ).json()

    assert code(missing) == "PERSISTED_QUERY_NOT_FOUND"
    assert found == {"data": {"competitors": {"totalCount": 0}}, **cost(1)}
    assert code(with_text) == "PERSISTED_QUERY_HASH_MISMATCH"


async def test_a_lookup_while_the_database_is_down_is_service_unavailable() -> None:
    settings = Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:9/none")
    async with app_client(settings) as http:
        response = await http.post("/graphql", json={"extensions": apq(COUNT)})

    assert response.status_code == 503
    body = response.json()
    assert code(body) == "SERVICE_UNAVAILABLE"
    assert body["errors"][0]["extensions"]["retryAfter"] == settings.db_retry_after_seconds
    assert response.headers["retry-after"] == str(settings.db_retry_after_seconds)


@pytest.mark.parametrize(
    "content", ["[1]", '{"a": 1}', "{", '{"a": {"b": "c"}}'], ids=["list", "int", "json", "nested"]
)
def test_an_unusable_trusted_documents_file_is_refused_at_start(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)

    with pytest.raises(TrustedDocumentsError, match=r"bad\.json"):
        TrustedDocuments.load(path)
