"""Every Prometheus metric of the service, and the per-request record that feeds them.

The metrics live in prometheus_client's default registry. Under ``serve`` the command line
points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before any worker starts, so every
worker writes its values there and a scrape of any worker sums them (metrics_endpoint.py).

Operation names are client input: a name becomes a label value only when its operation was
admitted, authorized and executed, and only while the worker has seen fewer than
``METRICS_MAX_OPERATION_NAMES`` distinct names; every other name counts as ``other``.
"""

from __future__ import annotations

import os
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, values

if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and values.ValueClass is values.MutexValue:
    # prometheus_client was imported before ``serve`` chose the directory (one worker: the
    # same process); its values must go to the directory all the same.
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]

# Outcomes of one request to /graphql.
OK = "ok"  # executed, no error
USER_ERROR = "user_error"  # executed; typed errors in a payload, or coded argument errors
REFUSED = "refused"  # refused before execution: malformed, invalid, too costly, unauthenticated
ERROR = "error"  # an unexpected failure (masked as INTERNAL_SERVER_ERROR)
UNAVAILABLE = "unavailable"  # SERVICE_UNAVAILABLE: the database or the worker was saturated
REPLAYED = "replayed"  # an Idempotency-Key retry answered with the stored response

NO_NAME = "-"  # an anonymous operation, or one refused before its name could be trusted
OTHER = "other"  # a name past the cap
UNKNOWN_TYPE = "-"
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,99}")
_CODE = re.compile(r"[A-Z][A-Z_]{0,63}")

REQUESTS = Counter(
    "gql_requests",
    "GraphQL requests by operation name, operation type and outcome.",
    ["operation", "type", "outcome"],
)
REQUEST_DURATION = Histogram(
    "gql_request_duration_seconds",
    "Time from a GraphQL request's arrival to its last response byte.",
    ["operation", "type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
USER_ERRORS = Counter(
    "gql_user_errors",
    "Typed user errors returned in mutation payloads, by error code.",
    ["code"],
)
TOP_LEVEL_ERRORS = Counter(
    "gql_errors",
    "Top-level GraphQL errors, by extensions.code.",
    ["code"],
)
TRANSACTION_RETRIES = Counter(
    "gql_transaction_retries",
    "Transactions retried by the unit of work: contention (serialization failure, deadlock, "
    "database is locked) or a connection found dead.",
    ["reason"],
)
POOL_SIZE = Gauge(
    "gql_db_pool_size",
    "Connections each pool may hold, summed over live workers.",
    ["pool"],
    multiprocess_mode="livesum",
)
POOL_CHECKED_OUT = Gauge(
    "gql_db_pool_checked_out",
    "Connections in use (checked out of the pool), summed over live workers.",
    ["pool"],
    multiprocess_mode="livesum",
)
SUBSCRIPTIONS_OPEN = Gauge(
    "gql_subscriptions_open",
    "GraphQL subscriptions open, summed over live workers.",
    multiprocess_mode="livesum",
)


@dataclass
class RequestRecord:
    """What one request did, filled in by the layers that know it."""

    start: float = field(default_factory=time.perf_counter)
    operation: str = NO_NAME
    kind: str = UNKNOWN_TYPE
    executed: bool = False
    codes: list[str] = field(default_factory=list)
    user_error_codes: list[str] = field(default_factory=list)
    replayed: bool = False


# Set by RequestMetrics for the request in progress; None when metrics are off.
CURRENT: ContextVar[RequestRecord | None] = ContextVar("gql_request_record", default=None)


class OperationNames:
    """The operation names that may be label values: bounded, first come first served."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.names: set[str] = set()

    def label(self, name: str | None) -> str:
        if not name or name == NO_NAME:
            return NO_NAME
        if name in self.names:
            return name
        if len(self.names) >= self.limit or not _NAME.fullmatch(name):
            return OTHER
        self.names.add(name)
        return name


def note_operation(name: str | None, kind: str, codes: list[str]) -> None:
    """An operation was executed (not refused before execution); ``codes`` are its errors'."""
    record = CURRENT.get()
    if record is None:
        return
    record.operation = name or NO_NAME
    record.kind = kind
    record.executed = True
    record.codes = codes


def note_refusal(codes: list[str]) -> None:
    """The request was refused before execution, with these top-level error codes."""
    record = CURRENT.get()
    if record is not None:
        record.codes = codes


def note_user_errors(codes: list[str]) -> None:
    """A mutation answered with typed user errors."""
    record = CURRENT.get()
    if record is not None:
        record.user_error_codes.extend(codes)


def note_retry(reason: str) -> None:
    TRANSACTION_RETRIES.labels(reason).inc()


def outcome(record: RequestRecord, status: int) -> str:
    codes = record.codes
    if record.replayed:
        return REPLAYED
    if status == 503 or "SERVICE_UNAVAILABLE" in codes:
        return UNAVAILABLE
    if status >= 500 or "INTERNAL_SERVER_ERROR" in codes:
        return ERROR
    if not record.executed or status >= 400:
        return REFUSED
    if codes or record.user_error_codes:
        return USER_ERROR
    return OK


# (operation, type, outcome) -> the request counter's and the histogram's children: labels()
# takes a lock and builds a key on every call. Bounded as the label values are.
_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def observe(record: RequestRecord, status: int, names: OperationNames) -> None:
    """Count one finished request."""
    result = outcome(record, status)
    # Only an executed operation's name is a label; a refused request's name is not trusted.
    name = names.label(record.operation) if record.executed and result != REFUSED else NO_NAME
    kind = record.kind if record.executed else UNKNOWN_TYPE
    key = (name, kind, result)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (
            REQUESTS.labels(name, kind, result),
            REQUEST_DURATION.labels(name, kind),
        )
    children[0].inc()
    children[1].observe(time.perf_counter() - record.start)
    for code in record.codes:
        # Codes are ours, but a label must never carry anything else.
        TOP_LEVEL_ERRORS.labels(code if _CODE.fullmatch(code) else OTHER).inc()
    for code in record.user_error_codes:
        USER_ERRORS.labels(code).inc()
