"""Prometheus metrics at /metrics: operations, outcomes, codes, retries, pools; protection."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError

from gql_service.app import create_app
from gql_service.database import driver_reads, reads_engine
from gql_service.graphql.compiled_reads import STATS
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork
from tests.operations import CREATE_QUOTE, create_opportunity, errors

CREATE_NAMED = """
mutation CreateOpportunityForMetrics($input: CreateOpportunityInput!) {
  createOpportunity(input: $input) { opportunity { id } errors { __typename } }
}"""
CLOSE_NAMED = f"""
mutation CloseForMetrics($input: CloseOpportunityInput!) {{
  closeOpportunity(input: $input) {{ opportunity {{ id state }} {errors()} }}
}}"""
READ_NAMED = """
query ReadForMetrics($id: ID!) { opportunity(id: $id) { id name state } }
"""
READ_BY_NAME = "query {name}($id: ID!) {{ opportunity(id: $id) {{ id }} }}"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
    await app.state.engine.dispose()


async def scrape(http: httpx.AsyncClient, **headers: str) -> Samples:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def post(http: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    body: dict[str, Any] = response.json()
    return body


async def test_metrics_count_operations_by_name_type_and_outcome(settings: Settings) -> None:
    async with serving(settings) as http:
        before = await scrape(http)
        created = await post(
            http, CREATE_NAMED, input={"name": "M", "customerName": "C", "currencyCode": "EUR"}
        )
        opportunity_id = created["data"]["createOpportunity"]["opportunity"]["id"]
        await post(http, CREATE_QUOTE, input={"opportunityId": opportunity_id, "name": "Q"})
        refused = await post(
            http, CLOSE_NAMED, input={"opportunityId": opportunity_id, "outcome": "LOST"}
        )
        codes = [e["code"] for e in refused["data"]["closeOpportunity"]["errors"]]
        assert codes == ["OPPORTUNITY_HAS_OPEN_QUOTES"]
        await post(http, "query Broken { nothingHere }")
        after = await scrape(http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "gql_requests_total"
    create = {"operation": "CreateOpportunityForMetrics", "type": "mutation"}
    assert delta(requests, **create, outcome="ok") == 1
    assert delta(requests, operation="-", type="mutation", outcome="ok") == 1  # anonymous
    assert delta(requests, operation="CloseForMetrics", type="mutation", outcome="user_error") == 1
    # A refused document's name is not trusted as a label.
    assert delta(requests, operation="-", type="-", outcome="refused") == 1
    assert value(after, requests, operation="Broken", type="-", outcome="refused") == 0
    assert delta("gql_user_errors_total", code="OPPORTUNITY_HAS_OPEN_QUOTES") == 1
    assert delta("gql_errors_total", code="GRAPHQL_VALIDATION_FAILED") == 1
    assert delta("gql_request_duration_seconds_count", **create) == 1
    assert delta("gql_request_duration_seconds_bucket", **create, le="+Inf") == 1
    assert delta("gql_request_duration_seconds_sum", **create) > 0


async def test_reads_answered_by_the_fast_lane_are_counted(settings: Settings) -> None:
    async with serving(settings) as http:
        before = await scrape(http)
        fast_before = STATS.fast
        created = await post(
            http, CREATE_NAMED, input={"name": "M", "customerName": "C", "currencyCode": "EUR"}
        )
        opportunity_id = created["data"]["createOpportunity"]["opportunity"]["id"]
        for _ in range(3):
            body = await post(http, READ_NAMED, id=opportunity_id)
            assert body["data"]["opportunity"]["id"] == opportunity_id
        after = await scrape(http)

    assert STATS.fast - fast_before == 2  # the first read taught the fast lane the document
    labels = {"operation": "ReadForMetrics", "type": "query"}
    count = value(after, "gql_requests_total", **labels, outcome="ok")
    assert count - value(before, "gql_requests_total", **labels, outcome="ok") == 3
    durations = value(after, "gql_request_duration_seconds_count", **labels)
    assert durations - value(before, "gql_request_duration_seconds_count", **labels) == 3


async def test_operation_names_past_the_cap_are_counted_as_other(settings: Settings) -> None:
    async with serving(replace(settings, metrics_max_operation_names=2)) as http:
        created = await post(
            http, CREATE_NAMED, input={"name": "M", "customerName": "C", "currencyCode": "EUR"}
        )
        opportunity_id = created["data"]["createOpportunity"]["opportunity"]["id"]
        before = await scrape(http)
        for name in ("CapFirst", "CapSecond", "CapThird", "CapFourth"):
            await post(http, READ_BY_NAME.format(name=name), id=opportunity_id)
        after = await scrape(http)

    operations = {labels for (name, labels) in after if name == "gql_requests_total"}
    names = {dict(labels)["operation"] for labels in operations}
    # The app's first name took one of the two places, CapFirst the other.
    assert "CapFirst" in names
    assert not names & {"CapSecond", "CapThird", "CapFourth"}
    other = {"operation": "other", "type": "query", "outcome": "ok"}
    assert value(after, "gql_requests_total", **other) - value(
        before, "gql_requests_total", **other
    ) == pytest.approx(3)


async def test_retried_transactions_are_counted(settings: Settings) -> None:
    app = create_app(settings)
    attempts = []

    async def work(_: Any) -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked"))
        return "done"

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        before = await scrape(http)
        assert await UnitOfWork(app.state.engine, actor="tester").run(work) == "done"
        after = await scrape(http)
    await app.state.engine.dispose()

    retries = "gql_transaction_retries_total"
    assert value(after, retries, reason="contention") - value(
        before, retries, reason="contention"
    ) == pytest.approx(2)


async def test_pool_gauges_follow_checked_out_connections(settings: Settings) -> None:
    app = create_app(settings)
    engine = app.state.engine
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        reads = reads_engine(engine)
        pools: dict[str, Any] = {"default": engine.connect()}
        if reads is not engine:
            pools["reads"] = reads.connect()
        on_asyncpg = driver_reads(reads)
        if on_asyncpg is not None:
            # Compiled reads' and, first, units of work's (driver_writes.py).
            pools["asyncpg"] = on_asyncpg.connection()
        before = await scrape(http)
        async with AsyncExitStack() as held:
            for each in pools.values():
                await held.enter_async_context(each)
            during = await scrape(http)
        after = await scrape(http)
    await engine.dispose()

    expected = ["default"] if settings.is_sqlite else ["default", "reads", "asyncpg"]
    assert list(pools) == expected
    checked_out = "gql_db_pool_checked_out"
    for pool in pools:
        assert value(during, checked_out, pool=pool) - value(
            before, checked_out, pool=pool
        ) == pytest.approx(1)
        assert value(after, checked_out, pool=pool) == value(before, checked_out, pool=pool)
        assert value(after, "gql_db_pool_size", pool=pool) >= settings.pool_size_per_worker
    assert ("gql_subscriptions_open", ()) in after


async def test_metrics_need_the_token_when_one_is_set(settings: Settings) -> None:
    async with serving(replace(settings, metrics_token="s3cret-scrape-token")) as http:
        missing = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"authorization": "Bearer nope"})
        found = await scrape(http, authorization="Bearer s3cret-scrape-token")

    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert ("gql_subscriptions_open", ()) in found


async def test_metrics_are_off_when_switched_off(settings: Settings) -> None:
    async with serving(replace(settings, metrics=False)) as http:
        response = await http.get("/metrics")
        opportunity = await create_opportunity(http_gql(http))

    assert response.status_code == 404
    assert opportunity["id"]


def http_gql(http: httpx.AsyncClient) -> Any:
    async def call(query: str, **variables: Any) -> dict[str, Any]:
        return await post(http, query, **variables)

    return call


def test_metrics_default_on_in_development_and_off_in_production() -> None:
    assert Settings.from_env({}).metrics
    assert not Settings.from_env({"GQL_ENV": "production"}).metrics
    protected = Settings.from_env({"GQL_ENV": "production", "METRICS_TOKEN": "tok-0123456789"})
    assert protected.metrics
    assert protected.metrics_token == "tok-0123456789"
    assert "tok-0123456789" not in repr(protected)
    assert Settings.from_env({"GQL_ENV": "production", "METRICS": "true"}).metrics
    assert not Settings.from_env({"METRICS": "false"}).metrics
