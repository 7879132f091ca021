"""The fast lane: an operation the service has answered before, answered again without
strawberry's per-request machinery.

A query, once admitted (parsed, validated, within the limits), authorized and answered by a
compiled statement, is remembered in ``KnownReads``; a mutation of a plain shape, once
executed, in ``KnownWrites`` (fast_writes.py). The next request with the same text and
operation name, a plain JSON POST, is answered here with the same steps and the same functions
as the normal path, minus the generic layers around them: the caller is authenticated and
must hold the operation's scope, the cost is priced for these variables by the same gate, a
read's statement comes from the same compiler cache, a write runs the resolver's service call,
and the response is the same bytes (the differential tests send each operation to both paths
to hold it to that). Whatever does not fit (a persisted query, an Idempotency-Key, a refused
caller, a cost over the limit, a failed statement, a dry run, a failed write) is left to the
normal path, which answers it as always.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from graphql import DocumentNode, OperationDefinitionNode
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.http.parse_content_type import parse_content_type

from gql_service import metrics
from gql_service.announcements import Broker
from gql_service.graphql import fast_writes
from gql_service.graphql.compiled_reads import STATS, fetch_row
from gql_service.graphql.compiler import CompiledRead
from gql_service.graphql.context import request_unit_of_work
from gql_service.graphql.extensions import log_operation
from gql_service.graphql.fast_writes import Declined, WritePlan
from gql_service.graphql.known_reads import KnownRead
from gql_service.graphql.negotiation import JSON, media_type
from gql_service.graphql.observability import operation_attributes, operation_span_name
from gql_service.graphql.request_body import decoded_request
from gql_service.principal import READ_SCOPE, WRITE_SCOPE, Authenticator, Principal
from gql_service.read_session import ReadSession
from gql_service.settings import Settings

if TYPE_CHECKING:
    from gql_service.graphql.schema import Schema


# scope["state"] key: the lane was offered this request already (by the front door), and left
# it to the normal path; it is not offered again.
LANE_TRIED = "fast_lane_tried"


class Answer(NamedTuple):
    """The lane's response: its body, sent with status 200 as ``media_type``."""

    body: bytes
    media_type: str


class FastLane:
    def __init__(
        self,
        schema: Schema,
        settings: Settings,
        authenticator: Authenticator,
        engine: AsyncEngine,
        broker: Broker | None = None,
    ) -> None:
        self.schema = schema
        self.settings = settings
        self.authenticator = authenticator
        self.engine = engine
        self.broker = broker
        self.gate = schema.gate
        self.compilers = schema.compilers
        self.reads = schema.known_reads if settings.compiled_reads else None
        # Traced writes execute: their spans come from the tracing extension.
        self.writes = (
            schema.known_writes if settings.fast_writes and schema.tracer is None else None
        )
        self.tracer = schema.tracer

    def accepts(self, headers: Mapping[str, str]) -> bool:
        """Whether a POST with these headers may be the lane's: plain JSON, no Idempotency-Key
        (the body decides the rest)."""
        if "idempotency-key" in headers:
            return False
        content_type = headers.get("content-type", "")
        # (The common case without parsing: the lane only needs to know that it is JSON.)
        return content_type == JSON or parse_content_type(content_type)[0] == JSON

    async def answer(
        self,
        headers: Mapping[str, str],
        body: bytes,
        reads: ReadSession,
        request_id: str,
        state: dict[str, Any],
    ) -> Answer | None:
        """The response to a known operation POSTed with ``headers`` (``accepts``) and
        ``body``, or None for the normal path to answer. A write that failed leaves its
        failure in ``state["attempted"]``, for the resolver to answer with."""
        start = time.perf_counter()
        try:
            data = decoded_request(body, max_depth=self.settings.max_json_depth)
        except Exception:  # the normal path refuses it, with its own error
            return None
        if data.extensions or data.document_id:
            return None
        variables = data.variables
        if not isinstance(data.query, str) or not isinstance(variables, dict | None):
            return None
        read = None if self.reads is None else self.reads.get(data.query, data.operation_name)
        write = None
        if read is None and self.writes is not None:
            write = self.writes.get(data.query, data.operation_name)
        if read is None and write is None:
            return None
        try:
            principal = await self.authenticator.authenticate(headers)
        except Exception:  # refused: the normal path says why, with its status and challenge
            return None
        if not principal.has_scope(READ_SCOPE if write is None else WRITE_SCOPE):
            return None
        known: KnownRead | WritePlan | None = read or write
        assert known is not None
        document, operation = known.document, known.operation
        requested = self.gate.price(self.schema._schema, document, data.query, operation, variables)
        maximum = self.settings.max_query_cost
        if requested > maximum:
            return None
        if write is not None:
            result = await self._write(state, write, variables, principal, reads)
        else:
            result = await self._read(
                data.operation_name, document, operation, variables, reads, start
            )
        if result is None:
            return None
        answer = Answer(
            orjson.dumps(
                {
                    "data": result,
                    "extensions": {"cost": {"requested": requested, "maximum": maximum}},
                }
            ),
            media_type(headers),
        )
        name = operation.name.value if operation.name else None
        metrics.note_operation(name, operation.operation.value, [])
        log_operation(request_id, name, operation.operation.value, start, 0)
        return answer

    async def _read(
        self,
        operation_name: str | None,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
        reads: ReadSession,
        start: float,
    ) -> dict[str, Any] | None:
        compiled = self.compilers.compile(
            self.schema._schema,
            document,
            operation_name=operation_name,
            variables=variables,
            dialect=reads.dialect,
        )
        if compiled is None:
            return None
        try:
            if self.tracer is None:
                row = await fetch_row(reads, compiled)
            else:
                row = await self._traced_fetch(reads, compiled, operation, start)
        except Exception:  # the normal path answers (an outage as SERVICE_UNAVAILABLE)
            return None
        STATS.compiled += 1
        STATS.fast += 1
        data: dict[str, Any] = compiled.data(row)
        return data

    async def _write(
        self,
        state: dict[str, Any],
        plan: WritePlan,
        variables: dict[str, Any] | None,
        principal: Principal,
        reads: ReadSession,
    ) -> dict[str, Any] | None:
        """The payload of the plan's write, or None when the normal path answers: where
        execution would refuse the input, for a dry run, and when the call failed, whose
        failure the resolver then answers with instead of calling again."""
        try:
            input = plan.input(self.schema, variables)
        except Declined:
            return None
        if plan.write.dry_run(input):
            return None
        unit_of_work = request_unit_of_work(
            self.engine, self.settings, principal, reads, self.broker
        )
        try:
            result = await plan.call(input)(unit_of_work)
        except Exception as exc:
            state["attempted"] = exc
            fast_writes.STATS.handed_over += 1
            return None
        fast_writes.STATS.answered += 1
        fast_writes.STATS.lean += plan.lean is not None
        return plan.data(result)

    async def _traced_fetch(
        self,
        reads: ReadSession,
        compiled: CompiledRead,
        operation: OperationDefinitionNode,
        start: float,
    ) -> Any:
        """The statement under the operation span the normal path would have made."""
        assert self.tracer is not None
        name = operation.name.value if operation.name else None
        kind = operation.operation.value
        started = time.time_ns() - int((time.perf_counter() - start) * 1e9)
        with self.tracer.start_as_current_span(
            operation_span_name(kind, name),
            attributes={**operation_attributes(kind, name), "gql_service.fast_lane": True},
            start_time=started,
        ):
            return await fetch_row(reads, compiled)
