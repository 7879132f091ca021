"""Accept-Language over HTTP: messages in Latvian or English, everything else the same."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx

from gql_service.app import create_app
from gql_service.settings import Settings
from tests.conftest import GraphQLClient
from tests.operations import (
    CLOSE_OPPORTUNITY,
    activate_quote,
    create_opportunity,
    create_quote,
    payload,
)

LIST = "query { opportunities(first: 5) { nodes { id name state } } }"
ENUM_LABELS = """
query Labels($enum: LabeledEnum!) { enumLabels(enum: $enum) { value label } }
"""
CLOSE_REASONS = """
query Reasons($outcome: CloseOutcome!) { closeStatusReasons(outcome: $outcome) { value label } }
"""
TOO_WIDE = "query { opportunities(first: 500) { nodes { id } } }"
LV = {"accept-language": "lv"}


async def post(
    http: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None, **variables: Any
) -> httpx.Response:
    return await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers or {}
    )


def without_messages(value: Any) -> Any:
    """The body with every ``message`` blanked: what must not depend on the language."""
    value = copy.deepcopy(value)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "message" in item:
                item["message"] = "-"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http
    finally:
        await app.state.engine.dispose()


async def test_the_same_refused_close_differs_only_in_its_messages(
    gql: GraphQLClient, client: httpx.AsyncClient
) -> None:
    opportunity = await create_opportunity(gql)
    await create_quote(gql, opportunity["id"], name="Draft")
    await activate_quote(gql, (await create_quote(gql, opportunity["id"]))["id"])
    close = {"opportunityId": opportunity["id"], "outcome": "LOST", "statusReason": "WON"}

    english = await post(client, CLOSE_OPPORTUNITY, {"accept-language": "en"}, input=close)
    latvian = await post(client, CLOSE_OPPORTUNITY, LV, input=close)
    close["statusReason"] = "OUT_SOLD"
    blocked_en = await post(client, CLOSE_OPPORTUNITY, None, input=close)
    blocked_lv = await post(client, CLOSE_OPPORTUNITY, {"accept-language": "lv-LV"}, input=close)

    for en, lv in ((english, latvian), (blocked_en, blocked_lv)):
        assert en.status_code == lv.status_code == 200
        assert en.headers["content-language"] == "en"
        assert lv.headers["content-language"] == "lv"
        assert without_messages(en.json()) == without_messages(lv.json())
        en_errors = payload(en.json(), "closeOpportunity")["errors"]
        lv_errors = payload(lv.json(), "closeOpportunity")["errors"]
        assert en_errors
        assert all(e["message"] != v["message"] for e, v in zip(en_errors, lv_errors, strict=True))
    reason = payload(latvian.json(), "closeOpportunity")["errors"][0]
    assert reason["code"] == "INVALID_STATUS_REASON"
    assert reason["field"] == ["input", "statusReason"]
    assert reason["message"] == (
        "Statusa iemesls WON šeit nav atļauts; atļautie: CANCELED, OUT_SOLD."
    )
    blocked = payload(blocked_lv.json(), "closeOpportunity")["errors"][0]
    assert blocked["code"] == "OPPORTUNITY_HAS_OPEN_QUOTES"
    assert len(blocked["openQuotes"]) == 2
    assert blocked["message"].startswith("Vispirms jāslēdz 2 atvērti piedāvājumi: ")
    assert "red. 0" in blocked["message"]
    english_blocked = payload(blocked_en.json(), "closeOpportunity")["errors"][0]
    assert english_blocked["message"].startswith("2 open quotes must be closed first: ")


async def test_top_level_errors_are_in_latvian_with_the_same_codes_and_statuses(
    settings: Settings,
) -> None:
    cheap = replace(settings, max_query_cost=3)
    async with serving(cheap) as http:
        en = await post(http, LIST)
        lv = await post(http, LIST, LV)
        page_lv = await post(http, TOO_WIDE, LV)
        bad_json = await http.post(
            "/graphql", content=b"{", headers={**LV, "content-type": "application/json"}
        )
    assert en.status_code == lv.status_code == 200
    assert without_messages(en.json()) == without_messages(lv.json())
    error = lv.json()["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["message"].startswith("Vaicājuma izmaksas ")
    assert en.json()["errors"][0]["message"].startswith("Query cost ")
    assert page_lv.json()["errors"][0]["extensions"]["code"] in {
        "PAGE_SIZE_EXCEEDED",
        "QUERY_TOO_COMPLEX",
    }
    assert bad_json.status_code == 400
    assert bad_json.json()["errors"] == [
        {
            "message": "Pieprasījuma saturs nav derīgs JSON UTF-8 kodējumā.",
            "extensions": {"code": "BAD_REQUEST"},
        }
    ]
    assert bad_json.headers["content-language"] == "lv"


async def test_a_page_size_refusal_in_a_resolver_is_translated(client: httpx.AsyncClient) -> None:
    response = await post(client, "query { competitors(first: 100000) { nodes { id } } }", LV)
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "PAGE_SIZE_EXCEEDED"
    assert error["path"] == ["competitors"]
    assert error["message"].startswith("first jābūt no 0 līdz ")


async def test_authentication_refusals_are_in_latvian_with_english_headers(
    settings: Settings,
) -> None:
    production = replace(settings, environment="production", api_keys_enabled=True)
    async with serving(production) as http:
        en = await post(http, LIST)
        lv = await post(http, LIST, {"accept-language": "en;q=0.5, lv"})
        bad = await post(http, LIST, {**LV, "authorization": "Basic abc"})
    assert en.status_code == lv.status_code == 401
    assert en.json()["errors"][0]["message"] == "Authentication required."
    assert lv.json()["errors"] == [
        {"message": "Nepieciešama autentifikācija.", "extensions": {"code": "UNAUTHENTICATED"}}
    ]
    assert lv.headers["www-authenticate"] == en.headers["www-authenticate"]
    assert bad.status_code == 401
    assert bad.json()["errors"][0]["message"] == (
        "Sūtiet marķieri kā 'Authorization: Bearer <token>'."
    )
    # The challenge header stays ASCII English: RFC 6750's error_description.
    assert "Authorization: Bearer <token>" in bad.headers["www-authenticate"]


async def test_edge_refusals_before_graphql_are_in_latvian(settings: Settings) -> None:
    async with serving(replace(settings, max_body_bytes=100)) as http:
        large = await http.post("/graphql", json={"query": "x" * 200}, headers=LV)
        key = await http.post(
            "/graphql",
            json={"query": LIST},
            headers={**LV, "idempotency-key": "with space"},
        )
    assert large.status_code == 413
    assert large.json()["errors"][0] == {
        "message": "Pieprasījuma saturs pārsniedz 100 baitus.",
        "extensions": {"code": "REQUEST_TOO_LARGE"},
    }
    assert large.headers["content-language"] == "lv"
    assert key.status_code == 400
    assert key.json()["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_INVALID"
    assert key.json()["errors"][0]["message"].startswith("Idempotency-Key ir 1")


async def test_enum_labels_in_english_and_latvian(client: httpx.AsyncClient) -> None:
    en = (await post(client, ENUM_LABELS, None, enum="OPPORTUNITY_STATE")).json()
    lv = (await post(client, ENUM_LABELS, LV, enum="OPPORTUNITY_STATE")).json()
    quote_lv = (await post(client, ENUM_LABELS, LV, enum="QUOTE_STATE")).json()
    assert en["data"]["enumLabels"] == [
        {"value": "OPEN", "label": "Open"},
        {"value": "WON", "label": "Won"},
        {"value": "LOST", "label": "Lost"},
    ]
    assert lv["data"]["enumLabels"] == [
        {"value": "OPEN", "label": "Atvērta"},
        {"value": "WON", "label": "Iegūta"},
        {"value": "LOST", "label": "Zaudēta"},
    ]
    assert quote_lv["data"]["enumLabels"] == [
        {"value": "DRAFT", "label": "Melnraksts"},
        {"value": "ACTIVE", "label": "Aktīvs"},
        {"value": "WON", "label": "Iegūts"},
        {"value": "CLOSED", "label": "Slēgts"},
    ]


async def test_every_labeled_enum_labels_every_value_in_schema_order(
    client: httpx.AsyncClient,
) -> None:
    schema = await post(client, '{ __type(name: "LabeledEnum") { enumValues { name } } }', None)
    enums = [v["name"] for v in schema.json()["data"]["__type"]["enumValues"]]
    assert len(enums) == 10  # issue 8: ContractState, BillingMethod, TransactionClass
    for name in enums:
        graphql_name = "".join(part.title() for part in name.split("_"))
        values = await post(
            client, f'{{ __type(name: "{graphql_name}") {{ enumValues {{ name }} }} }}', None
        )
        expected = [v["name"] for v in values.json()["data"]["__type"]["enumValues"]]
        for headers in (None, LV):
            labels = (await post(client, ENUM_LABELS, headers, enum=name)).json()
            pairs = labels["data"]["enumLabels"]
            assert [p["value"] for p in pairs] == expected
            assert all(p["label"] for p in pairs)


async def test_close_status_reasons_follow_the_outcome(client: httpx.AsyncClient) -> None:
    lost = (await post(client, CLOSE_REASONS, LV, outcome="LOST")).json()
    won = (await post(client, CLOSE_REASONS, None, outcome="WON")).json()
    assert lost["data"]["closeStatusReasons"] == [
        {"value": "CANCELED", "label": "Atcelta"},
        {"value": "OUT_SOLD", "label": "Zaudēta konkurentam"},
    ]
    assert won["data"]["closeStatusReasons"] == [{"value": "WON", "label": "Won"}]


async def test_responses_say_their_language_and_vary_on_it(client: httpx.AsyncClient) -> None:
    # Sent twice: the second answer comes from the fast lane for known reads.
    for _ in range(2):
        lv = await post(client, LIST, {"accept-language": "fr, lv;q=0.3"})
        unknown = await post(client, LIST, {"accept-language": "de, fr"})
        assert lv.headers["content-language"] == "lv"
        assert unknown.headers["content-language"] == "en"
        for response in (lv, unknown):
            assert "accept-language" in response.headers["vary"].lower()
        assert lv.content == unknown.content
