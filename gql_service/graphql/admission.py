"""Admission of an operation: parse, cheap limits, validation, cost; every refusal coded.

The order matters. The cheap, linear limits (tokens while parsing; depth, aliases and repeated
fields right after) run before graphql-core's validation, whose overlapping-fields rule is
quadratic in repeated fields. The cost needs a validated document, and runs before any
resolver.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from functools import lru_cache
from itertools import islice
from typing import Any, TypeVar

from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    get_operation_ast,
    parse,
    validate,
)
from graphql.validation import MaxIntrospectionDepthRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from gql_service.graphql.cost import as_number, cost, measure
from gql_service.graphql.localized import LocalizedGraphQLError
from gql_service.messages import msg, plural_msg
from gql_service.settings import Settings

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
BAD_USER_INPUT = "BAD_USER_INPUT"
OPERATION_RESOLUTION_FAILURE = "OPERATION_RESOLUTION_FAILURE"
TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
TOO_MANY_REPEATED_FIELDS = "TOO_MANY_REPEATED_FIELDS"
QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"

CACHE_SIZE = 256
# Documents longer than this are parsed and validated in a thread (see Admission._off_the_loop).
OFF_LOOP_CHARS = 1_024
T = TypeVar("T")
TOKEN_LIMIT_MESSAGE = re.compile(r"^Syntax Error: Document contains more than \d+ tokens\.")
SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")
# GraphQL's lexical tokens, comments included (as the parser's token limit counts them): block
# strings, strings, comments, punctuators, numbers and names. Counting them with one C-level
# regex refuses a long document in about a millisecond, where the parser takes ~12 us a token.
TOKEN = re.compile(
    r'"""(?:\\"""|\\(?!""")|[^"\\]|"(?!""))*"""|"(?:[^"\\\n\r]|\\.)*"|#[^\n\r]*'
    r"|\.\.\.|[!$&():=@\[\]{}|]|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[_A-Za-z][_0-9A-Za-z]*"
)


def coded(error: GraphQLError, code: str, **extensions: Any) -> GraphQLError:
    """A copy of ``error`` with ``extensions.code`` (an existing code is kept)."""
    merged = {"code": code, **extensions, **(error.extensions or {})}
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions=merged,
    )


def too_complex(requested: int, maximum: int) -> GraphQLError:
    return LocalizedGraphQLError(
        msg(
            "Query cost {requested} exceeds the maximum cost of {maximum}.",
            requested=requested,
            maximum=maximum,
        ),
        extensions={
            "code": QUERY_TOO_COMPLEX,
            "cost": {"requested": requested, "maximum": maximum},
        },
    )


class Gate:
    """The admission rules and caches, built once per schema (the caches key on query text)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        extra: list[type[ASTValidationRule]] = [
            MaxIntrospectionDepthRule,
            MaybeNullValidationRule,
            OneOfInputValidationRule,
        ]
        if not settings.introspection:
            extra.append(NoSchemaIntrospectionCustomRule)
        # Built once: the validation cache keys on the rule classes.
        self.extra_rules = tuple(extra)
        self.parse = lru_cache(CACHE_SIZE)(self._parse)
        self._cached_validation = lru_cache(CACHE_SIZE)(self._validate_text)
        self._cached_limits = lru_cache(CACHE_SIZE)(self._limits_of_text)
        self._cached_price = lru_cache(CACHE_SIZE)(self._price_of_text)
        # Texts admitted lately, in the caches' order: those need no thread (see Admission).
        self._seen: OrderedDict[str, None] = OrderedDict()

    def seen(self, query: str) -> bool:
        """Whether ``query`` was admitted lately; remembers it from now on."""
        if query in self._seen:
            self._seen.move_to_end(query)
            return True
        self._seen[query] = None
        if len(self._seen) > CACHE_SIZE:
            self._seen.popitem(last=False)
        return False

    def _parse(self, query: str) -> DocumentNode:
        maximum = self.settings.max_tokens
        if len(query) > maximum and _count(TOKEN.finditer(query), maximum + 1) > maximum:
            raise LocalizedGraphQLError(
                msg(
                    "Syntax Error: Document contains more than {maximum} tokens. Parsing aborted.",
                    maximum=maximum,
                ),
                extensions={"code": TOO_MANY_TOKENS, "maximum": maximum},
            )
        try:
            return parse(query, max_tokens=self.settings.max_tokens)
        except GraphQLSyntaxError as error:
            if TOKEN_LIMIT_MESSAGE.match(error.message):
                raise coded(error, TOO_MANY_TOKENS, maximum=self.settings.max_tokens) from None
            raise coded(error, PARSE_FAILED) from None

    def operation(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        name: str | None,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> OperationDefinitionNode:
        """The operation to run, or a coded error saying why there is none."""
        operation = get_operation_ast(document, name)
        if operation is not None:
            return operation
        if not any(isinstance(d, OperationDefinitionNode) for d in document.definitions):
            # Nothing to run at all: the document is not executable, which validation says.
            raise next(iter(self.validate(schema, document, None, rules)))
        if name is None:
            message = msg("Must provide operation name if query contains multiple operations.")
        else:
            message = msg("Unknown operation named '{name}'.", name=name)
        raise LocalizedGraphQLError(message, extensions={"code": OPERATION_RESOLUTION_FAILURE})

    def limits(
        self, document: DocumentNode, query: str | None, operation: OperationDefinitionNode
    ) -> GraphQLError | None:
        """The first cheap limit the operation exceeds, if any."""
        name = operation.name.value if operation.name else None
        if query is not None:
            return self._cached_limits(query, name)
        return self._limits(document, operation)

    def _limits_of_text(self, query: str, name: str | None) -> GraphQLError | None:
        document = self.parse(query)
        operation = get_operation_ast(document, name)
        assert operation is not None  # resolved before the limits run
        return self._limits(document, operation)

    def _limits(
        self, document: DocumentNode, operation: OperationDefinitionNode
    ) -> GraphQLError | None:
        settings = self.settings
        try:
            shape = measure(document, operation)
        except RecursionError:
            return LocalizedGraphQLError(
                msg("The query nests too deeply to be analysed."),
                extensions={"code": QUERY_TOO_DEEP, "maximum": settings.max_query_depth},
            )
        if shape.depth > settings.max_query_depth:
            return LocalizedGraphQLError(
                msg(
                    "Query depth {requested} exceeds the maximum depth of {maximum}.",
                    requested=shape.depth,
                    maximum=settings.max_query_depth,
                ),
                extensions={
                    "code": QUERY_TOO_DEEP,
                    "requested": shape.depth,
                    "maximum": settings.max_query_depth,
                },
            )
        if shape.aliases > settings.max_aliases:
            return LocalizedGraphQLError(
                plural_msg(
                    "{count} alias exceeds the maximum of {maximum} aliases.",
                    "{count} aliases exceed the maximum of {maximum} aliases.",
                    shape.aliases,
                    maximum=settings.max_aliases,
                ),
                extensions={
                    "code": TOO_MANY_ALIASES,
                    "requested": shape.aliases,
                    "maximum": settings.max_aliases,
                },
            )
        if shape.repeats > settings.max_field_repeats:
            return LocalizedGraphQLError(
                msg(
                    "'{field}' is selected {requested} times in one selection set; "
                    "at most {maximum} are allowed.",
                    field=shape.repeated_field,
                    requested=shape.repeats,
                    maximum=settings.max_field_repeats,
                ),
                extensions={
                    "code": TOO_MANY_REPEATED_FIELDS,
                    "field": shape.repeated_field,
                    "requested": shape.repeats,
                    "maximum": settings.max_field_repeats,
                },
            )
        if shape.introspection > settings.max_query_cost:
            return too_complex(shape.introspection, settings.max_query_cost)
        return None

    def validate(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        query: str | None,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        if query is not None:
            return self._cached_validation(schema, query, rules)
        return self._validate(schema, document, rules)

    def _validate_text(
        self, schema: GraphQLSchema, query: str, rules: tuple[type[ASTValidationRule], ...]
    ) -> list[GraphQLError]:
        return self._validate(schema, self.parse(query), rules)

    def _validate(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        errors = validate(
            schema,
            document,
            (*rules, *self.extra_rules),
            hide_suggestions=not self.settings.field_suggestions,
        )
        return [coded(error, VALIDATION_FAILED) for error in errors]

    def price(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        query: str | None,
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
    ) -> int:
        if query is None:
            return self._price(schema, document, operation, variables)
        # The cost reads only numbers from the variables: they, not the values, are the key.
        given = variables if isinstance(variables, dict) else {}
        numbers = tuple(sorted((k, as_number(v)) for k, v in given.items()))
        name = operation.name.value if operation.name else None
        return self._cached_price(schema, query, name, numbers)

    def _price_of_text(
        self,
        schema: GraphQLSchema,
        query: str,
        name: str | None,
        numbers: tuple[tuple[str, int | None], ...],
    ) -> int:
        document = self.parse(query)
        operation = get_operation_ast(document, name)
        assert operation is not None  # resolved before the cost is computed
        return self._price(schema, document, operation, dict(numbers))

    def _price(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
    ) -> int:
        return cost(
            schema,
            document,
            operation,
            variables,
            default_page_size=self.settings.default_page_size,
            max_page_size=self.settings.max_page_size,
        )

    def hide_suggestions(self, message: str) -> str:
        if self.settings.field_suggestions:
            return message
        return SUGGESTION.sub("", message)


def _count(items: Iterator[object], stop: int) -> int:
    """How many items there are, counting no further than ``stop``."""
    return sum(1 for _ in islice(items, stop))


class Admission(SchemaExtension):
    """Runs the gate around strawberry's parse, validate and execute steps.

    Replaces strawberry's ParserCache, ValidationCache, MaxTokensLimiter, QueryDepthLimiter and
    MaxAliasesLimiter (whose analysis walks a fragment again at every spread).
    """

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.requested = 0
        self.text: str | None = None
        self.off_loop = False
        self.operation: OperationDefinitionNode | None = None

    async def _off_the_loop(self, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)``, in a thread when the document is long.

        Parsing and validating a long document nobody sent before costs tens of milliseconds of
        pure Python (~12 us a token). In a thread the event loop still gets the interpreter
        every switch interval, so /healthz and other requests keep answering meanwhile. A
        document already in the caches costs a look-up, and stays on the loop.
        """
        if self.off_loop:
            return await asyncio.to_thread(work, *args)
        return work(*args)

    async def on_parse(self) -> AsyncIterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            self.text = context.query
            self.off_loop = len(self.text) > OFF_LOOP_CHARS and not self.gate.seen(self.text)
            context.graphql_document = await self._off_the_loop(self.gate.parse, context.query)
        if context.graphql_document is not None:
            self.operation = self.gate.operation(
                context.schema._schema,
                context.graphql_document,
                # The name as sent: ``operation_name`` falls back to the first operation's.
                context._provided_operation_name,
                context.validation_rules,
            )
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        document, operation = context.graphql_document, self.operation
        assert document is not None
        assert operation is not None
        schema = context.schema._schema
        refusal = self.gate.limits(document, self.text, operation)
        if refusal is not None:
            if refusal.extensions and "cost" in refusal.extensions:
                self.requested = refusal.extensions["cost"]["requested"]
            context.pre_execution_errors = [refusal]
            yield
            return
        errors = await self._off_the_loop(
            self.gate.validate, schema, document, self.text, context.validation_rules
        )
        if not errors:
            self.requested = self.gate.price(
                schema, document, self.text, operation, context.variables
            )
            maximum = self.gate.settings.max_query_cost
            if self.requested > maximum:
                errors = [too_complex(self.requested, maximum)]
        # A list, even empty, tells strawberry that validation has run.
        context.pre_execution_errors = errors
        yield

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors or result.data is not None:
            return
        # No data and errors outside any field: the variables did not coerce.
        result.errors = [
            coded(
                GraphQLError(
                    self.gate.hide_suggestions(error.message),
                    nodes=error.nodes,
                    extensions=error.extensions,
                ),
                BAD_USER_INPUT,
            )
            if error.path is None
            else error
            for error in result.errors
        ]

    def get_results(self) -> dict[str, Any]:
        return {"cost": {"requested": self.requested, "maximum": self.gate.settings.max_query_cost}}


def admission(gate: Gate) -> Callable[[], Admission]:
    """A factory for the schema's extensions list: one gate, a fresh extension per request."""
    return lambda: Admission(gate)
