"""The README's walk-through, run as written on the demo data that `make run` loads."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from gql_service.app import create_app
from gql_service.seed import seed_demo
from gql_service.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"
OPERATION_NAME = re.compile(r"\s*(?:query|mutation) (\w+)")
BLOCK = re.compile(r"```(graphql|json)\n(.*?)```", re.DOTALL)
# Random on every run: quote and contract numbers and close batch ids.
RANDOM = [
    (re.compile(r"QUO-[0-9A-F]{8}"), "QUO-XXXXXXXX"),
    (re.compile(r"CON-[0-9A-F]{8}"), "CON-XXXXXXXX"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "UUID"),
]


def walkthrough_steps() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(operation, variables, response) for each operation of the README's walk-through."""
    text = README.read_text()
    start = text.index("\n## A walk-through\n")
    section = text[start : text.index("\n## ", start + 1)]
    blocks = BLOCK.findall(section)
    steps = []
    for index, (kind, block) in enumerate(blocks):
        if kind != "graphql":
            continue
        following = blocks[index + 1 : index + 3]
        assert [k for k, _ in following] == ["json", "json"], (
            f"the operation is not followed by its variables and its response:\n{block}"
        )
        steps.append((block, json.loads(following[0][1]), json.loads(following[1][1])))
    return steps


def _comparable(value: object) -> object:
    text = json.dumps(value, sort_keys=True)
    for pattern, stand_in in RANDOM:
        text = pattern.sub(stand_in, text)
    result: object = json.loads(text)
    return result


def test_every_walkthrough_operation_shows_its_variables_and_selects_user_errors() -> None:
    steps = walkthrough_steps()
    assert len(steps) >= 12
    for operation, variables, _ in steps:
        assert variables, operation
        # Named, so that the operations show by name in /metrics, the logs and the traces.
        assert OPERATION_NAME.match(operation), operation
        if operation.lstrip().startswith("mutation"):
            assert "... on UserError { code message field }" in operation, operation


async def test_the_readme_walkthrough_answers_as_written_on_the_demo_data(
    settings: Settings,
) -> None:
    # As `make run` serves (development mode, acting as "system"), on either engine: a fresh
    # database numbers the demo records alike, so the ids shown are the same.
    app = create_app(replace(settings, acting_user=Settings.acting_user))
    await seed_demo(app.state.engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        for number, (operation, variables, expected) in enumerate(walkthrough_steps(), 1):
            response = await http.post(
                "/graphql", json={"query": operation, "variables": variables}
            )
            body = response.json()
            body.pop("extensions", None)
            assert response.status_code == 200
            assert _comparable(body) == _comparable(expected), f"operation {number}:\n{operation}"
        # An operator's scrape afterwards shows every operation by name, type and outcome.
        exposition = (await http.get("/metrics")).text
    await app.state.engine.dispose()
    counted = {
        (labels["operation"], labels["type"], labels["outcome"]): float(value)
        for labels, value in requests_counted(exposition)
    }
    assert counted[("CreateQuote", "mutation", "ok")] >= 2
    assert counted[("CloseOpportunity", "mutation", "user_error")] >= 1
    assert counted[("CloseOpportunity", "mutation", "ok")] >= 1
    assert counted[("Opportunity", "query", "ok")] >= 1
    names = {OPERATION_NAME.match(operation)[1] for operation, _, _ in walkthrough_steps()}  # type: ignore[index]
    assert names <= {name for name, _, _ in counted}


def requests_counted(exposition: str) -> list[tuple[dict[str, str], str]]:
    """The samples of gql_requests_total: their labels and values."""
    samples = []
    for line in exposition.splitlines():
        if line.startswith("gql_requests_total{"):
            labels, _, value = line.removeprefix("gql_requests_total{").partition("} ")
            samples.append((dict(re.findall(r'(\w+)="([^"]*)"', labels)), value))
    return samples
