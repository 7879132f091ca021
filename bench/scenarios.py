"""The benchmark's GraphQL operations, shared by the load driver and bench/baseline.py.

Each request body names its operation (R1, R2, W1, W2, W3); the baseline dispatches on that
name and answers with the JSON the service gives for the same document.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

OPPORTUNITY_FIELDS = """id name customerName currencyCode estimatedRevenue estimatedCloseDate
      state statusReason forecastCategory actualRevenue actualCloseDate description version"""
QUOTE_FIELDS = """id quoteNumber revisionNumber name totalAmount state statusReason isOpen
          closedOn version"""
TREE = f"""{OPPORTUNITY_FIELDS}
      quotes(first: 10) {{ nodes {{ {QUOTE_FIELDS}
          closeRecord {{ id statusReason closeDate description batchId }} }} }}
      closeHistory {{ id outcome statusReason actualRevenue closeDate description state
        competitor {{ id name }} }}"""

R1 = f"""query R1($id: ID!) {{
  opportunity(id: $id) {{
      {TREE}
  }}
}}"""

# By estimated close date, earliest first, then those without one; ties by id (as the issue
# asks). bench/baseline.py's R2_SQL orders the same way.
R2_ORDER = "{field: ESTIMATED_CLOSE_DATE, direction: ASC}"
R2 = f"""query R2 {{
  opportunities(first: 50, filter: {{state: [OPEN]}}, orderBy: {R2_ORDER}) {{
    nodes {{
      {TREE}
    }}
  }}
}}"""

CLOSE_DATE = "2025-06-30"
CLOSED_OPPORTUNITY = (
    "opportunity { id state statusReason forecastCategory actualRevenue actualCloseDate version }"
)
CLOSE_RECORD = "opportunityClose { id outcome statusReason actualRevenue closeDate state }"
CLOSED_QUOTE = "id state statusReason closedOn version"

W1 = f"""mutation W1($id: ID!) {{
  closeOpportunity(input: {{opportunityId: $id, outcome: LOST, closeDate: "{CLOSE_DATE}"}}) {{
    {CLOSED_OPPORTUNITY}
    {CLOSE_RECORD}
    errors {{ __typename }}
  }}
}}"""

W2 = f"""mutation W2($id: ID!) {{
  closeQuotes(input: {{opportunityId: $id, closeDate: "{CLOSE_DATE}"}}) {{
    opportunity {{ id version }}
    closedQuotes {{ {CLOSED_QUOTE} }}
    errors {{ __typename }}
  }}
}}"""

W3 = f"""mutation W3($id: ID!) {{
  closeOpportunity(input: {{opportunityId: $id, outcome: LOST, closeDate: "{CLOSE_DATE}",
                           closeOpenQuotes: true}}) {{
    {CLOSED_OPPORTUNITY}
    {CLOSE_RECORD}
    closedQuotes {{ {CLOSED_QUOTE} }}
    errors {{ __typename }}
  }}
}}"""

OPERATIONS = {"R1": R1, "R2": R2, "W1": W1, "W2": W2, "W3": W3}


@dataclass(frozen=True)
class Scenario:
    """One measured scenario: its operation, and for writes the pool it closes."""

    name: str
    operation: str
    description: str
    write: bool = False
    open_quotes: int = 0  # open quotes per pool opportunity
    pool_per_second: int = 0  # fresh targets per second of run (a run stops when it has none)


SCENARIOS = [
    Scenario("R1", "R1", "one opportunity with quotes, close records, close history"),
    Scenario("R2", "R2", "50 open opportunities with the same tree"),
    # Pools above the baseline's rate on this 2-core machine (it closed up to 3,400 W1, 2,800
    # W2-3, 2,500 W3 and 1,000 W2-30 a second), so that a run's rate is its own, not its
    # pool's. W2-1000 stays at 40 a second: a pool the baseline cannot use up would add millions
    # of quotes to the data set.
    Scenario("W1", "W1", "closeOpportunity (LOST), no open quotes", True, 0, 4_000),
    Scenario("W2-3", "W2", "closeQuotes, 3 open quotes", True, 3, 4_000),
    Scenario("W2-30", "W2", "closeQuotes, 30 open quotes", True, 30, 1_500),
    Scenario("W2-1000", "W2", "closeQuotes, 1,000 open quotes", True, 1_000, 40),
    Scenario("W3", "W3", "closeOpportunity with closeOpenQuotes, 2 open quotes", True, 2, 3_500),
]


def global_id(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def body_template(operation: str) -> str:
    """The POST body, with ``__ID__`` where the Lua script puts each request's id."""
    variables = {} if operation == "R2" else {"id": "__ID__"}
    return json.dumps(
        {"query": OPERATIONS[operation], "operationName": operation, "variables": variables},
        separators=(",", ":"),
    )
