"""Hostile input over real HTTP: generated operations and malformed bodies never break the service.

The real app runs under uvicorn in a subprocess, on each engine, and one keep-alive client sends
request bodies no client should send, the hostile inputs named in issue 5, and operations
generated from the schema (valid ones and ones with a violation, with hostile scalar values,
inline and as variables). Any 5xx, dropped connection, answer that is not GraphQL, masked
unexpected error, or traceback, SQL or driver name in an answer or in the server log fails the
test; the failure message lists every kind of failure with its shortest example.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gql_service.settings import Settings
from tests.hostile_operations import (
    FORMS,
    KNOWN_HOSTILE,
    MALFORMED,
    REAL_KEYS,
    generated_operations,
)
from tests.hostile_probe import Probe, Request
from tests.operations import (
    ACTIVATE_QUOTE,
    CLOSE_OPPORTUNITY,
    CREATE_COMPETITOR,
    CREATE_OPPORTUNITY,
    CREATE_QUOTE,
    cost,
)
from tests.subprocess_server import LiveServer, live_server

# Documents generated once per session and sent on each engine in FORMS forms (inline, as
# variables, twice with hostile variables): 500 make 2,000 operations per engine, 4,000 per run.
DOCUMENTS = int(os.environ.get("HOSTILE_DOCUMENTS", "500"))
JSON = "application/json"
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(settings.database_url, tmp_path / "server.log") as running:
        yield running


@pytest.fixture
def probe(server: LiveServer) -> Iterator[Probe]:
    probe = Probe(server)
    yield probe
    probe.close()


def call(probe: Probe, query: str, **variables: Any) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables}).encode()
    answer = probe.post_graphql(body, label="seed")
    assert answer is not None, probe.report()
    assert "errors" not in answer, answer
    data: dict[str, Any] = next(iter(answer["data"].values()))
    assert data["errors"] == [], data
    return data


def seed(probe: Probe) -> None:
    """Rows 1..REAL_KEYS of each type, so generated global ids sometimes name real rows."""
    for index in range(1, REAL_KEYS + 1):
        call(probe, CREATE_COMPETITOR, input={"name": f"Rival {index}"})
        opportunity = call(
            probe,
            CREATE_OPPORTUNITY,
            input={
                "name": f"Deal {index}",
                "customerName": "Contoso",
                "currencyCode": "EUR",
                "estimatedRevenue": "1000.00",
            },
        )["opportunity"]
        quote = call(probe, CREATE_QUOTE, input={"opportunityId": opportunity["id"], "name": "Q"})
        if index % 2:
            call(probe, ACTIVATE_QUOTE, input={"quoteId": quote["quote"]["id"]})
        if index > REAL_KEYS - 2:
            close = {"opportunityId": opportunity["id"], "outcome": "LOST", "closeOpenQuotes": True}
            call(probe, CLOSE_OPPORTUNITY, input=close)


def test_hostile_requests_never_break_the_service(probe: Probe) -> None:
    operations = generated_operations(DOCUMENTS)
    seed(probe)

    send_malformed_bodies(probe)
    for number, known in enumerate(KNOWN_HOSTILE):
        probe.post_graphql(known.body(), label=f"issue 5 input {number}")
    for index, operation in enumerate(operations):
        # Every other document asks for the GraphQL-over-HTTP media type (400 on bad requests).
        accept = GRAPHQL_RESPONSE_JSON if index % (2 * FORMS) >= FORMS else JSON
        probe.post_graphql(operation.body(), accept=accept, label=f"operation {index}")
    alive = probe.post_graphql(b'{"query": "{ __typename }"}')

    assert len(operations) == FORMS * DOCUMENTS
    assert not probe.failures, probe.report()
    assert alive == {"data": {"__typename": "Query"}, **cost(0)}


def send_malformed_bodies(probe: Probe) -> None:
    """Each must get an answer on a live connection; some must get a 400 GraphQL error."""
    for malformed in MALFORMED:
        headers = {"accept": GRAPHQL_RESPONSE_JSON}
        if malformed.content_type is not None:
            headers["content-type"] = malformed.content_type
        request = Request(
            malformed.method, malformed.path, malformed.body, headers, malformed.label
        )
        answer = probe.send(request)
        refused = answer is not None and _is_graphql_error(answer.status, answer.body)
        if malformed.graphql_400 and answer is not None and not refused:
            probe.fail("not a 400 GraphQL error", malformed.label, request)


def _is_graphql_error(status: int, body: bytes) -> bool:
    try:
        decoded = json.loads(body)
    except ValueError:
        return False
    return status == 400 and isinstance(decoded, dict) and bool(decoded.get("errors"))
