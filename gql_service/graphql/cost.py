"""Static analysis of an operation, linear in the document: shape (depth, aliases) and cost.

Each fragment is analysed once and its figures memoized, so a spread costs a dictionary look-up
however often it appears: a chain of fragments each spreading the previous one twice is
analysed in microseconds, while its figures (which count every spread) grow as 2^n and refuse it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    is_leaf_type,
    value_from_ast_untyped,
)

from gql_service.bulk_closing import BULK_CLOSE_MAX

# What the cost counts, after Shopify's calculated query cost and GitHub's node limit: an
# object costs 1, a scalar or enum 0, and a list multiplies the cost of what it holds by its
# expected length.
OBJECT_COST = 1
MUTATION_COST = 10
# A list without a size argument (closeHistory, closedQuotes, a payload's errors): its
# expected length.
UNSIZED_LIST_LENGTH = 10
# Introspection is priced whole: one schema document is about a thousand objects.
INTROSPECTION_COST = {"__schema": 1_000, "__type": 50}
PAGE_ARGUMENTS = ("first", "last")
# A bulk mutation's list of results: each element is one single mutation (MUTATION_COST plus
# what it selects), priced at the most elements the bulk accepts, so that a bulk close of
# 100 items costs what 100 closeOpportunity calls cost.
BULK_RESULTS = {("CloseOpportunitiesPayload", "results"): BULK_CLOSE_MAX}


@dataclass(frozen=True)
class Shape:
    """The variable-free figures of an operation, with every fragment spread counted."""

    depth: int
    aliases: int
    repeats: int
    repeated_field: str | None
    # The cost of the introspection fields alone: it needs no schema, so it is known early.
    introspection: int


@dataclass
class _Figures:
    depth: int = 0
    aliases: int = 0
    introspection: int = 0
    repeats: int = 0
    repeated_field: str | None = None
    keys: Counter[str] = field(default_factory=Counter)

    def absorb_nested(self, other: _Figures) -> None:
        self.aliases += other.aliases
        self.introspection += other.introspection
        if other.repeats > self.repeats:
            self.repeats, self.repeated_field = other.repeats, other.repeated_field

    def close(self) -> _Figures:
        """Fold this selection set's own response keys into its worst repetition."""
        if self.keys:
            key, count = self.keys.most_common(1)[0]
            if count > self.repeats:
                self.repeats, self.repeated_field = count, key
        return self


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def measure(document: DocumentNode, operation: OperationDefinitionNode) -> Shape:
    """Depth (nested fields that have selections; introspection excluded), aliases, the
    most times one response key is selected in one selection set, and the introspection cost.

    Needs no schema, so it runs before validation; unknown fragments and fragment cycles,
    which validation refuses, count as empty.
    """
    figures = _Shaper(fragments_of(document)).selection_set(operation.selection_set)
    return Shape(
        figures.depth,
        figures.aliases,
        figures.repeats,
        figures.repeated_field,
        figures.introspection,
    )


class _Shaper:
    def __init__(self, fragments: Mapping[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self.memo: dict[str, _Figures] = {}
        self.in_progress: set[str] = set()

    def selection_set(self, node: SelectionSetNode) -> _Figures:
        figures = _Figures()
        self.merge(node, figures)
        return figures.close()

    def merge(self, node: SelectionSetNode, into: _Figures) -> None:
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                into.keys[(selection.alias or selection.name).value] += 1
                if selection.alias:
                    into.aliases += 1
                into.introspection += INTROSPECTION_COST.get(selection.name.value, 0)
                if selection.selection_set is None:
                    continue
                nested = self.selection_set(selection.selection_set)
                if not selection.name.value.startswith("__"):
                    into.depth = max(into.depth, 1 + nested.depth)
                into.absorb_nested(nested)
            elif isinstance(selection, InlineFragmentNode):
                self.merge(selection.selection_set, into)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragment(selection.name.value)
                into.keys.update(fragment.keys)
                into.depth = max(into.depth, fragment.depth)
                into.absorb_nested(fragment)

    def fragment(self, name: str) -> _Figures:
        known = self.memo.get(name)
        if known is not None:
            return known
        definition = self.fragments.get(name)
        if definition is None or name in self.in_progress:
            return _Figures()
        self.in_progress.add(name)
        figures = _Figures()
        self.merge(definition.selection_set, figures)
        self.in_progress.discard(name)
        # Not closed: its keys join the selection set the fragment is spread into.
        self.memo[name] = figures
        return figures


def cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
    *,
    default_page_size: int,
    max_page_size: int,
) -> int:
    """The calculated cost of a validated operation, before any resolver runs.

    A connection (a field with ``first``/``last``) costs 1 plus its page size times the cost
    of each of its items, sized by ``first``/``last`` from literals or variables, else the
    default page size, capped at the maximum page size (larger pages are refused anyway);
    ``nodes(ids:)`` is sized by its ids. Every mutation field adds a base cost, and so does
    each result of a bulk mutation (``BULK_RESULTS``).
    """
    root = (
        schema.mutation_type
        if operation.operation == OperationType.MUTATION
        else schema.subscription_type
        if operation.operation == OperationType.SUBSCRIPTION
        else schema.query_type
    )
    if root is None:
        return 0
    values = dict(variables or {})
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name not in values and definition.default_value is not None:
            values[name] = value_from_ast_untyped(definition.default_value)
    pricer = _Pricer(schema, fragments_of(document), values, default_page_size, max_page_size)
    base = MUTATION_COST if operation.operation == OperationType.MUTATION else 0
    return pricer.selection_set(operation.selection_set, root, None, base)


class _Pricer:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        default_page_size: int,
        max_page_size: int,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self.memo: dict[tuple[str, int | None, int], int] = {}
        self.in_progress: set[tuple[str, int | None, int]] = set()

    def selection_set(
        self, node: SelectionSetNode, parent: GraphQLNamedType, size: int | None, base: int
    ) -> int:
        """``size`` is the page size when ``parent`` is a connection; ``base`` is the cost
        added to each field (the mutation cost at the root of a mutation)."""
        total = 0
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                total += base + self.field(selection, parent, size)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                if inner is not None:
                    total += self.selection_set(selection.selection_set, inner, size, base)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value, size, base)
        return total

    def fragment(self, name: str, size: int | None, base: int) -> int:
        key = (name, size, base)
        if key in self.memo:
            return self.memo[key]
        definition = self.fragments.get(name)
        if definition is None or key in self.in_progress:
            return 0
        condition = self.schema.get_type(definition.type_condition.name.value)
        if condition is None:
            return 0
        self.in_progress.add(key)
        self.memo[key] = self.selection_set(definition.selection_set, condition, size, base)
        self.in_progress.discard(key)
        return self.memo[key]

    def field(self, node: FieldNode, parent: GraphQLNamedType, size: int | None) -> int:
        name = node.name.value
        if name in INTROSPECTION_COST:
            return INTROSPECTION_COST[name]
        definition = _field_of(parent, name)
        if definition is None or node.selection_set is None:
            return 0
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            return 0
        arguments = {a.name.value: a.value for a in node.arguments or ()}
        if any(a in definition.args for a in PAGE_ARGUMENTS):
            page = self.page_size(arguments)
            return OBJECT_COST + self.selection_set(node.selection_set, named, page, 0)
        each = OBJECT_COST + self.selection_set(node.selection_set, named, None, 0)
        bulk = BULK_RESULTS.get((parent.name, name))
        if bulk is not None:
            return bulk * (MUTATION_COST + each)
        if not _is_list(definition):
            return each
        if size is None:
            size = self.list_length(arguments)
        return size * each

    def page_size(self, arguments: Mapping[str, ValueNode]) -> int:
        sizes = [self.number(arguments.get(a)) for a in PAGE_ARGUMENTS]
        given = [s for s in sizes if s is not None]
        size = max(given) if given else self.default_page_size
        return min(max(size, 0), self.max_page_size)

    def list_length(self, arguments: Mapping[str, ValueNode]) -> int:
        ids = self.number(arguments.get("ids"))
        return UNSIZED_LIST_LENGTH if ids is None else min(ids, self.max_page_size)

    def number(self, value: ValueNode | None) -> int | None:
        """An int literal or variable as an int; a list as its length; anything else None."""
        if isinstance(value, IntValueNode):
            return int(value.value)
        if isinstance(value, ListValueNode):
            return len(value.values)
        if isinstance(value, VariableNode):
            return as_number(self.variables.get(value.name.value))
        return None


def as_number(raw: Any) -> int | None:
    """What the cost reads from a variable's value: an int, or a list's length."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, list):
        return len(raw)
    return None


def _field_of(parent: GraphQLNamedType, name: str) -> GraphQLField | None:
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        found: GraphQLField | None = parent.fields.get(name)
        return found
    return None


def _is_list(definition: GraphQLField) -> bool:
    type_ = definition.type
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)
