"""GraphiQL in a real headless Chromium, with every host but the service unreachable."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.browser import OfflinePage

pytestmark = pytest.mark.browser

QUERY = """query FromTheBrowser {
  opportunities(first: 3, filter: {state: [OPEN]}) {
    totalCount
    nodes { name state quotes(first: 5) { totalCount } }
  }
}"""

EDITOR = ".graphiql-query-editor .CodeMirror"
RESULT = ".result-window .CodeMirror"


async def _editor_text(offline: OfflinePage, selector: str) -> str:
    text: str = await offline.page.eval_on_selector(selector, "node => node.CodeMirror.getValue()")
    return text


async def test_graphiql_runs_a_query_without_any_other_host(offline_page: OfflinePage) -> None:
    page = offline_page.page

    response = await page.goto("/graphql")
    assert response is not None
    assert response.status == 200
    await page.wait_for_selector(EDITOR, state="visible", timeout=30_000)
    assert "query OpenOpportunities" in await _editor_text(offline_page, EDITOR)
    await offline_page.screenshot("default-tab")

    await page.eval_on_selector(EDITOR, "(node, query) => node.CodeMirror.setValue(query)", QUERY)
    # GraphiQL takes the operation name from the editor a moment after an edit (debounced) and
    # then saves its tabs; running before that would send the default tab's name.
    await page.wait_for_function(
        """() => (localStorage.getItem('graphiql:tabState') || '')
            .includes('"operationName":"FromTheBrowser"')""",
        timeout=30_000,
    )
    await page.click(f"{EDITOR} .CodeMirror-code")
    await page.keyboard.press("Control+Enter")
    await page.wait_for_function(
        """selector => {
            const node = document.querySelector(selector);
            return node && node.CodeMirror.getValue().includes('"data"');
        }""",
        arg=RESULT,
        timeout=30_000,
    )
    await offline_page.screenshot("result")

    result: dict[str, Any] = json.loads(await _editor_text(offline_page, RESULT))
    assert "errors" not in result, result
    opportunities = result["data"]["opportunities"]
    assert opportunities["totalCount"] > 0
    assert {node["state"] for node in opportunities["nodes"]} == {"OPEN"}
    assert offline_page.blocked == []
    assert offline_page.errors == []
