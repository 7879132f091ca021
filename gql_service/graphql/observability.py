"""Schema extensions for operators: the metrics record and OpenTelemetry spans of an operation.

Both are added to the schema only when switched on (METRICS, OTEL_*): off, they cost nothing.

``OperationTracing`` does what strawberry's ``OpenTelemetryExtension`` does, differently where
that one does not fit this service: the operation span is *current* while the operation runs,
so SQL issued outside resolvers (a compiled read answers before any resolver) hangs below it;
it is named ``<type> <name>`` with the operation's attributes from OpenTelemetry's GraphQL
conventions, not ``SpanKind.SERVER`` under the HTTP server span; it records neither the
document nor any argument (inputs carry customers' names and free text); and it gives a span
only to resolvers that await something, i.e. those that reach the database (root fields,
DataLoader relations, mutations), not to every plain field of every list item.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from inspect import isawaitable
from typing import Any

from graphql import GraphQLResolveInfo
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Tracer
from strawberry.extensions import SchemaExtension

from gql_service import metrics

TRACER_NAME = "gql_service.graphql"


def operation_span_name(kind: str | None, name: str | None) -> str:
    """OpenTelemetry's GraphQL span name: ``<type> <name>``, or the type alone."""
    kind = kind or "GraphQL operation"
    return f"{kind} {name}" if name else kind


def operation_attributes(kind: str | None, name: str | None) -> dict[str, str]:
    attributes = {"graphql.operation.type": kind or "unknown"}
    if name:
        attributes["graphql.operation.name"] = name
    return attributes


def _codes(errors: list[Any]) -> list[str]:
    return [str((e.extensions or {}).get("code") or "UNKNOWN") for e in errors]


class RecordMetrics(SchemaExtension):
    """Tells the request's metrics record what the operation was and how it ended."""

    def on_operation(self) -> Iterator[None]:
        yield
        if metrics.CURRENT.get() is None:
            return
        context = self.execution_context
        result = context.result
        errors = list(getattr(result, "errors", None) or [])
        if errors and getattr(result, "data", None) is None and all(e.path is None for e in errors):
            metrics.note_refusal(_codes(errors))
            return
        try:
            kind = context.operation_type.value
        except Exception:  # pragma: no cover - an executed operation always has a type
            kind = metrics.UNKNOWN_TYPE
        metrics.note_operation(context.operation_name, kind, _codes(errors))


class OperationTracing(SchemaExtension):
    """One span per operation, current while it runs; a child span per database resolver."""

    def __init__(self, *, tracer: Tracer) -> None:
        self.tracer = tracer

    def on_operation(self) -> Iterator[None]:
        span = self.tracer.start_span(operation_span_name(None, None))
        token = otel_context.attach(trace.set_span_in_context(span))
        self.span = span
        try:
            yield
        finally:
            otel_context.detach(token)
            context = self.execution_context
            try:
                kind: str | None = context.operation_type.value
            except Exception:  # not parsed: no operation to name
                kind = None
            name = context.operation_name if kind else None
            span.update_name(operation_span_name(kind, name))
            span.set_attributes(operation_attributes(kind, name))
            errors = getattr(context.result, "errors", None) or []
            if errors:
                span.set_attribute("graphql.error.codes", _codes(errors))
            span.end()

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        # Synchronous, so that plain fields stay plain: only an awaited resolver gets a span.
        result = _next(root, info, *args, **kwargs)
        if not isawaitable(result):
            return result
        return self._traced(result, info)

    async def _traced(self, result: Awaitable[Any], info: GraphQLResolveInfo[Any]) -> Any:
        attributes = {
            "graphql.field.name": info.field_name,
            "graphql.field.path": ".".join(str(p) for p in info.path.as_list()),
            "graphql.parent_type": info.parent_type.name,
        }
        with self.tracer.start_as_current_span(
            f"resolve {info.parent_type.name}.{info.field_name}", attributes=attributes
        ):
            return await result


def tracing_extension(tracer: Tracer) -> Callable[[], SchemaExtension]:
    """A zero-argument factory, as strawberry wants extensions (never shared instances)."""

    def make() -> SchemaExtension:
        return OperationTracing(tracer=tracer)

    return make
