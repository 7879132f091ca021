"""The fast lane's writes: a known mutation document, run and rendered without execution.

graphql-core's execution and strawberry's resolver machinery cost about a third of a
closeOpportunity's CPU, more than its five SQL statements. Once a mutation document of a plain
shape has been executed normally (so it parsed, validated and passed the limits), it is
remembered with a ``WritePlan``; the next request with the same text and operation name takes
the lane (fast_lane.py), which coerces its variables and input as execution would, runs the
same service call as the resolver (mutations.FAST_WRITES), and renders the selection straight
from the records the call returned (``Write.records``), by the same readers ``from_model``
builds the GraphQL objects with (types.FromRecord): building the objects only to read them
back cost a closeQuotes of 30 quotes about a tenth of its CPU.

Only a successful call is rendered here. A call that fails, with typed errors or otherwise,
changed nothing (or, cut off during its commit, may have: either way it must not run twice):
its exception is handed to the normal path, whose resolver answers with it instead of calling
the service again (``Context.attempted``). So errors, their messages and their languages come
from one place.

A plain shape: one root field among ``FAST_WRITES``, no fragments, directives or repeated
response keys, and below it only fields that read a value the payload already holds (no
resolver of their own, hence no loader and no statement), ``__typename``, and ``errors``,
which is empty on success. Anything else is never remembered and always executes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass
from dataclasses import field as dataclass_field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from cachetools import LRUCache
from graphql import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    DocumentNode,
    FieldNode,
    GraphQLBoolean,
    GraphQLField,
    GraphQLID,
    GraphQLInputObjectType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLString,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    ValueNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_abstract_type,
    is_leaf_type,
    is_required_input_field,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.utilities.coerce_input_value import coerce_default_value, coerce_input_literal
from strawberry.extensions import SchemaExtension
from strawberry.relay.types import GlobalID
from strawberry.scalars import is_scalar
from strawberry.schema.schema_converter import CustomGraphQLEnumType
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryObjectDefinition,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.lazy_type import LazyType
from strawberry.types.unset import UNSET

from gql_service.graphql.ids import id_variables
from gql_service.graphql.mutations import FAST_WRITES, Call, Lean, Write
from gql_service.graphql.types import FROM_RECORD

if TYPE_CHECKING:
    import strawberry

Render = Callable[[Any], Any]
Convert = Callable[[Any], Any]


@dataclass
class Stats:
    """How known mutations were answered, per process."""

    answered: int = 0  # rendered by the lane
    lean: int = 0  # of which by the write's lean call (WritePlan.lean)
    handed_over: int = 0  # the call failed; the normal path answered with its failure


STATS = Stats()


class Declined(Exception):
    """The request is not one the lane answers; the normal path executes it."""


@dataclass(frozen=True)
class WritePlan:
    """How to answer one known mutation document: its root field and how to render it."""

    document: DocumentNode
    operation: OperationDefinitionNode
    key: str  # the root field's response key
    node: FieldNode
    field: Any  # graphql-core's GraphQLField of the root field
    write: Write[Any, Any, Any]
    render: Render
    # The write's lean call, where the document reads no more than it returns.
    lean: Lean[Any, Any] | None
    convert: Convert  # the argument ``input``'s value as strawberry converts it
    # The argument ``input`` as get_argument_values coerces it, where it is an object literal
    # (``_literal_input``); else get_argument_values runs.
    literal: Callable[[VariableValues], Any] | None = None
    # The operation's variables of type ID (or ID!): inputs are remembered by the values of
    # the others, with these put in place (``input``).
    id_variables: frozenset[str] = frozenset()
    # By the variables' shape (``_shape``): an input converted before, and which of its
    # fields holds which ID variable's value.
    inputs: LRUCache[bytes, tuple[Any, tuple[tuple[str, str], ...]]] = dataclass_field(
        default_factory=lambda: LRUCache(maxsize=INPUTS), compare=False
    )

    def input(self, schema: strawberry.Schema, variables: dict[str, Any] | None) -> Any:
        """The field's input as the resolver would get it; Declined where execution would
        refuse the variables or the input (it says why).

        Requests with one document mostly differ in an id alone: an input converted for the
        same other values is copied, with the ids put in place, instead of coercing and
        converting the variables again (2-4% of a fast close's CPU in ``make bench-ab``).
        """
        shape = self._shape(variables)
        if shape is not None:
            known = self.inputs.get(shape)
            if known is not None:
                template, places = known
                made = _copied(template)
                for attribute, name in places:
                    setattr(made, attribute, variables[name])  # type: ignore[index]
                return made
        made = self._converted(schema, variables)
        if shape is not None:
            found = _id_places(made, variables or {}, self.id_variables)
            if found is not None:
                self.inputs[shape] = (_copied(made), found)
        return made

    def _shape(self, variables: dict[str, Any] | None) -> bytes | None:
        """The variables with each ID variable's string value left out, as bytes; None where
        they are not plain JSON values."""
        ids = self.id_variables
        try:
            return orjson.dumps(
                {
                    name: [0] if name in ids and type(value) is str else [1, value]
                    for name, value in (variables or {}).items()
                },
                option=orjson.OPT_SORT_KEYS,
            )
        except TypeError:
            return None

    def _converted(self, schema: strawberry.Schema, variables: dict[str, Any] | None) -> Any:
        coerced = get_variable_values(
            schema._schema, self.operation.variable_definitions or (), variables or {}
        )
        if isinstance(coerced, list):
            raise Declined
        try:
            if self.literal is not None:
                return self.convert(self.literal(coerced))
            return self.convert(get_argument_values(self.field, self.node, coerced)["input"])
        except Exception as exc:
            raise Declined from exc

    def call(self, input: Any) -> Call[Any]:
        """The service call for ``input``: the write's lean one where the plan has it."""
        return (self.lean or self.write).call(input)

    def data(self, result: Any) -> dict[str, Any]:
        """The response data for the successful call's ``result``."""
        return {self.key: self.render((self.lean or self.write).records(result))}


# Inputs remembered per document (``WritePlan.inputs``).
INPUTS = 64
# Field values a copied input may share with the one it was copied from.
_IMMUTABLE = (str, int, float, bool, Decimal, date, datetime, Enum, type(None), type(UNSET))


def _copied(made: Any) -> Any:
    """A shallow copy of a converted input (its fields are immutable: ``_id_places``)."""
    copy = object.__new__(type(made))
    copy.__dict__.update(made.__dict__)
    return copy


def _id_places(
    made: Any, variables: dict[str, Any], ids: frozenset[str]
) -> tuple[tuple[str, str], ...] | None:
    """Which field of the converted input ``made`` holds which ID variable's string (that
    very object: coercion and conversion pass an ID's string through), or None where a copy
    with other ids put there could differ from converting them: a field of another kind than
    the immutable values, an ID found in no field or in several, or a field equal to one
    without being it."""
    fields = getattr(made, "__dict__", None)
    if fields is None or not all(isinstance(value, _IMMUTABLE) for value in fields.values()):
        return None
    places = []
    for name in ids:
        value = variables.get(name)
        if type(value) is not str:
            continue
        holding = [attribute for attribute, held in fields.items() if held is value]
        equal = [attribute for attribute, held in fields.items() if held == value]
        if len(holding) != 1 or equal != holding:
            return None
        places.append((holding[0], name))
    return tuple(places)


class KnownWrites:
    """Mutation documents executed lately, by text and operation name as sent, with their plan:
    None for those the lane leaves to execution, so that they are not planned again."""

    def __init__(self, size: int = 256) -> None:
        self._known: LRUCache[tuple[str, str | None], WritePlan | None] = LRUCache(maxsize=size)

    def remember(self, query: str, operation_name: str | None, plan: WritePlan | None) -> None:
        self._known[(query, operation_name)] = plan

    def get(self, query: str, operation_name: str | None) -> WritePlan | None:
        return self._known.get((query, operation_name))

    def __contains__(self, key: tuple[str, str | None]) -> bool:
        return key in self._known


def plan_write(
    schema: strawberry.Schema, document: DocumentNode, operation_name: str | None
) -> WritePlan | None:
    """The plan for the document's operation, or None if the lane must leave it to execution."""
    operation = get_operation_ast(document, operation_name)
    if (
        operation is None
        or operation.operation is not OperationType.MUTATION
        or operation.directives
        or len(document.definitions) != 1
        or len(operation.selection_set.selections) != 1
    ):
        return None
    node = operation.selection_set.selections[0]
    if not isinstance(node, FieldNode) or node.directives or node.name.value not in FAST_WRITES:
        return None
    mutation = schema._schema.mutation_type
    definition = schema.get_type_by_name(mutation.name) if mutation else None
    if mutation is None or not isinstance(definition, StrawberryObjectDefinition):
        return None
    name = node.name.value
    field = _field(schema, definition, name)
    if field is None or field.extensions or field.permission_classes:
        return None
    arguments = {argument.python_name: argument for argument in field.arguments}
    if set(arguments) != {"input"}:
        return None
    convert = _converter(schema, arguments["input"].type)
    if convert is None:
        return None
    payload = mutation.fields[name].type
    render = _renderer(schema, payload, node.selection_set, payload=True)
    if render is None:
        return None
    lean = FAST_WRITES[name].lean
    return WritePlan(
        lean=lean if lean and _reads_only(schema, payload, node.selection_set, lean) else None,
        id_variables=frozenset(id_variables(operation)),
        literal=_literal_input(mutation.fields[name], node),
        document=document,
        operation=operation,
        key=node.alias.value if node.alias else name,
        node=node,
        field=mutation.fields[name],
        write=FAST_WRITES[name],
        render=render,
        convert=convert,
    )


def _reads_only(
    schema: strawberry.Schema,
    payload: GraphQLOutputType,
    selection: SelectionSetNode | None,
    lean: Lean[Any, Any],
) -> bool:
    """Whether the payload's selection reads nothing of the items of ``lean.field`` but what
    the lean call's items hold: plain fields among ``lean.holds``, and ``__typename``."""
    payload_type = get_nullable_type(payload)
    if selection is None or not isinstance(payload_type, GraphQLObjectType):
        return False
    item_type = get_named_type(payload_type.fields[lean.field].type)
    definition = schema.get_type_by_name(item_type.name)
    if not isinstance(definition, StrawberryObjectDefinition):
        return False
    for node in selection.selections:
        if not isinstance(node, FieldNode) or node.name.value != lean.field:
            continue
        for item_node in node.selection_set.selections if node.selection_set else ():
            if not isinstance(item_node, FieldNode) or item_node.selection_set is not None:
                return False
            if item_node.name.value == "__typename":
                continue
            field = _field(schema, definition, item_node.name.value)
            if field is None or field.python_name not in lean.holds:
                return False
    return True


def _literal_input(field: GraphQLField, node: FieldNode) -> Callable[[VariableValues], Any] | None:
    """What ``get_argument_values(field, node, variables)["input"]`` gives, for an ``input``
    written as an object literal whose fields are constants or variables, with the constants
    (and absent fields' defaults) coerced once. Coercing them through their scalars on every
    request was about a twentieth of a fast closeOpportunity's CPU. Follows graphql-core's
    ``coerce_input_literal``: a variable given no value counts as an absent field; a missing
    one where the field is required, or a null where its type is non-null, makes the input
    invalid (Declined, for execution to report). None where graphql-core must coerce it: a
    variable for the whole input, a variable nested in a constant's list or object, a oneOf
    input."""
    argument_type = field.args["input"].type if "input" in field.args else None
    arguments = node.arguments or ()
    if (
        len(field.args) != 1
        or len(arguments) != 1
        or not isinstance(arguments[0].value, ObjectValueNode)
        or not isinstance(argument_type, GraphQLNonNull)
        or not isinstance(argument_type.of_type, GraphQLInputObjectType)
        or argument_type.of_type.is_one_of
    ):
        return None
    type_ = argument_type.of_type
    given = {each.name.value: each.value for each in arguments[0].value.fields}
    if any(name not in type_.fields for name in given):
        return None
    parts: list[_Part] = []
    for name, input_field in type_.fields.items():
        out = input_field.out_name or name
        value = given.get(name)
        required = is_required_input_field(input_field)
        default = Undefined if required else coerce_default_value(input_field)
        if value is None:
            if required:
                return None
            if default is not Undefined:
                parts.append(_Part(out, constant=default))
        elif isinstance(value, VariableNode):
            non_null = isinstance(input_field.type, GraphQLNonNull)
            parts.append(_Part(out, Undefined, value.name.value, default, required, non_null))
        else:
            if _has_variables(value):
                return None
            constant = coerce_input_literal(value, input_field.type)
            if constant is Undefined:
                return None
            parts.append(_Part(out, constant=constant))
    out_type = type_.out_type

    def literal(variables: VariableValues) -> Any:
        coerced: dict[str, Any] = {}
        for out, constant, variable, default, required, non_null in parts:
            if variable is None:
                coerced[out] = constant
                continue
            value = variables.coerced.get(variable, Undefined)
            if value is Undefined:  # no value: as if the field were absent
                if required:
                    raise Declined
                if default is not Undefined:
                    coerced[out] = default
            elif value is None and non_null:
                raise Declined
            else:
                coerced[out] = value
        return out_type(coerced)

    return literal


class _Part(NamedTuple):
    """One field of a literal input: a constant, or a variable to read."""

    out: str  # its key in the coerced input
    constant: Any = Undefined
    variable: str | None = None
    default: Any = Undefined  # for a variable without a value (Undefined: none)
    required: bool = False
    # A field with a default may be non-null without being required.
    non_null: bool = False


def _has_variables(value: ValueNode) -> bool:
    if isinstance(value, VariableNode):
        return True
    if isinstance(value, ListValueNode):
        return any(_has_variables(item) for item in value.values)
    if isinstance(value, ObjectValueNode):
        return any(_has_variables(each.value) for each in value.fields)
    return False


def _field(schema: strawberry.Schema, definition: StrawberryObjectDefinition, name: str) -> Any:
    converter = schema.config.name_converter
    for field in definition.fields:
        if converter.get_graphql_name(field) == name:
            return field
    return None


def _converter(schema: strawberry.Schema, type_: Any) -> Convert | None:
    """strawberry's ``convert_argument`` for values of ``type_``, worked out once: the same
    dataclasses, defaults and pass-through leaves, without looking types up per value (which
    was a tenth of a fast closeOpportunity's CPU). None for what it does not cover (Maybe,
    GlobalID, inputs that build themselves), which the lane then leaves to execution."""
    if isinstance(type_, StrawberryMaybe):
        return None
    if isinstance(type_, StrawberryOptional):
        return _converter(schema, type_.of_type)
    if isinstance(type_, LazyType):
        return _converter(schema, type_.resolve_type())
    if type_ is GlobalID:
        return None
    if isinstance(type_, StrawberryList):
        item = _converter(schema, type_.of_type)
        if item is None:
            return None
        return _unless_absent(lambda values: [item(value) for value in values])
    if (
        is_scalar(type_, schema.schema_converter.scalar_registry)
        or isinstance(type_, StrawberryEnumDefinition)
        or has_enum_definition(type_)
    ):
        return _unless_absent(lambda value: value)
    if not has_object_definition(type_):
        return None
    definition = type_.__strawberry_definition__
    if not definition.is_input or definition.from_input is not None:
        return None
    # Fields without a default are None unless given (graphql-core has checked required ones).
    defaults = {
        field.python_name: None
        for field in definition.fields
        if field.default_value is MISSING and field.default_factory is MISSING
    }
    fields: list[tuple[str, str, Convert]] = []
    for field in definition.fields:
        convert = _converter(schema, field.resolve_type(type_definition=definition))
        if convert is None:
            return None
        fields.append((schema.config.name_converter.from_field(field), field.python_name, convert))

    def build(value: dict[str, Any]) -> Any:
        kwargs = dict(defaults)
        for name, python_name, convert in fields:
            if name in value:
                kwargs[python_name] = convert(value[name])
        return type_(**kwargs)

    return _unless_absent(build)


def _unless_absent(convert: Convert) -> Convert:
    return lambda value: value if value is None or value is UNSET else convert(value)


def _renderer(
    schema: strawberry.Schema,
    type_: GraphQLOutputType,
    selection: SelectionSetNode | None,
    *,
    payload: bool = False,
) -> Render | None:
    """What graphql-core's completion of the object that a value of ``type_`` is built from
    gives, as a function: a payload from its fields' records (``Write.records``), an object
    type from its record (types.FromRecord), a leaf from its value. None for what the lane
    does not render."""
    if isinstance(type_, GraphQLNonNull):
        return _renderer(schema, type_.of_type, selection, payload=payload)
    if isinstance(type_, GraphQLList):
        item = _renderer(schema, type_.of_type, selection)
        if item is None:
            return None
        return lambda value: None if value is None else [item(v) for v in value]
    if isinstance(type_, CustomGraphQLEnumType):
        return _enum_renderer(type_)
    if is_leaf_type(type_):
        return _leaf_renderer(type_)
    if is_abstract_type(type_):
        # Only a payload's errors are abstract here, and a successful call has none.
        return _nothing
    if isinstance(type_, GraphQLObjectType) and selection is not None:
        if payload:
            return _object_renderer(schema, type_, selection, _payload_field)
        spec = FROM_RECORD.get(type_.name)
        if spec is None:
            return None
        return _object_renderer(schema, type_, selection, spec.reader)
    return None  # pragma: no cover - a validated document selects fields of every object


# graphql-core's scalars that give back a value of this exact type as it is (an Int within
# its 32 bits).
_AS_IS: dict[GraphQLScalarType, tuple[type, Callable[[Any], bool] | None]] = {
    GraphQLString: (str, None),
    GraphQLID: (str, None),
    GraphQLBoolean: (bool, None),
    GraphQLInt: (int, lambda value: GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT),
}


def _leaf_renderer(type_: Any) -> Render:
    """The scalar's or enum's ``coerce_output_value``, without calling it for the values it
    gives back as they are (a tenth of the rendering of a closeQuotes of 30 quotes)."""
    coerce = type_.coerce_output_value
    kind, fits = _AS_IS.get(type_, (None, None))
    if kind is None:
        return lambda value: None if value is None else coerce(value)
    if fits is None:
        return lambda value: (
            value if type(value) is kind else None if value is None else coerce(value)
        )
    return lambda value: (
        value if type(value) is kind and fits(value) else None if value is None else coerce(value)
    )


def _enum_renderer(type_: CustomGraphQLEnumType) -> Render:
    """An enum's names by member, as strawberry's ``coerce_output_value`` finds them (the
    first GraphQL value equal to the member's): it searches the type's values for each value
    rendered, which cost a closeQuotes of 30 quotes a fifth of its CPU in a profile."""
    coerce = type_.coerce_output_value
    names: dict[Any, str] = {}
    members: Iterable[Any] = type_.wrapped_cls
    for member in members:
        for name, value in type_.values.items():
            if member.value == value.value:
                names[member] = name
                break

    def render(value: Any) -> Any:
        if value is None:
            return None
        return names.get(value) or coerce(value)

    return render


def _payload_field(name: str) -> Render:
    """How a payload's field reads the payload's records: ``errors`` are none on success."""
    if name == "errors":
        return _no_errors
    return itemgetter(name)


def _no_errors(_: Any) -> list[Any]:
    return []


def _object_renderer(
    schema: strawberry.Schema,
    type_: GraphQLObjectType,
    selection: SelectionSetNode,
    reader: Callable[[str], Render],
) -> Render | None:
    """Renders the selection of a ``type_`` object from what ``reader(python name)`` reads
    each field's value from."""
    definition = schema.get_type_by_name(type_.name)
    if not isinstance(definition, StrawberryObjectDefinition):
        return None
    parts: list[tuple[str, Render, Render]] = []
    keys: set[str] = set()
    for node in selection.selections:
        if not isinstance(node, FieldNode) or node.directives or node.arguments:
            return None
        key = node.alias.value if node.alias else node.name.value
        if key in keys:
            return None  # graphql-core merges repeated keys; the lane does not
        keys.add(key)
        if node.name.value == "__typename":
            parts.append((key, _constant(type_.name), _same))
            continue
        field = _field(schema, definition, node.name.value)
        if field is None or field.base_resolver is not None or field.extensions:
            return None
        render = _renderer(schema, type_.fields[node.name.value].type, node.selection_set)
        if render is None:
            return None
        parts.append((key, reader(field.python_name), render))

    def render_object(value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        return {key: render(read(value)) for key, read, render in parts}

    return render_object


def _same(value: Any) -> Any:
    return value


def _constant(value: str) -> Render:
    return lambda _: value


def _nothing(value: Any) -> Any:
    raise TypeError(f"the fast lane renders no abstract value: {value!r}")


class RememberWrites(SchemaExtension):
    """After a mutation executed without errors, remembers its document, with the plan by
    which the lane answers it next time, if any."""

    def __init__(self, known: KnownWrites) -> None:
        self.known = known

    def on_execute(self) -> Any:
        yield
        execution = self.execution_context
        result = execution.result
        query, document = execution.query, execution.graphql_document
        if result is None or result.errors or not query or document is None:
            return
        name = execution._provided_operation_name
        if (query, name) in self.known or not execution.context.settings.fast_writes:
            return
        self.known.remember(query, name, plan_write(execution.schema, document, name))


def remember_writes(known: KnownWrites) -> Callable[[], SchemaExtension]:
    return lambda: RememberWrites(known)
