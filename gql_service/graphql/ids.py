"""Opaque Relay global ids: base64 of "<TypeName>:<primary key>"."""

from __future__ import annotations

import base64
import binascii

from graphql import NamedTypeNode, NonNullTypeNode, OperationDefinitionNode

from gql_service.errors import not_found
from gql_service.messages import msg
from gql_service.models import MAX_ID

# base64's URL-safe alphabet, from the standard one.
_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def encode_id(type_name: str, pk: int) -> str:
    # (base64.urlsafe_b64encode, without its two Python-level calls.)
    encoded = binascii.b2a_base64(f"{type_name}:{pk}".encode(), newline=False)
    return encoded.translate(_URL_SAFE).decode().rstrip("=")


def parse_id(global_id: str) -> tuple[str, int] | None:
    """The (type name, primary key) behind a global id, or None when it is not one of ours."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (ValueError, UnicodeError, binascii.Error):
        return None
    type_name, sep, pk = raw.partition(":")
    # Only the spelling we issue: ASCII digits, no sign or leading zero, within the id column.
    # str.isdigit alone admits "²" (which int() refuses) and Arabic-Indic digits (which int()
    # reads as ours).
    if not sep or not pk.isascii() or not pk.isdigit() or len(pk) > len(str(MAX_ID)):
        return None
    number = int(pk)
    if number > MAX_ID or str(number) != pk:
        return None
    return type_name, number


def decode_id(global_id: str, type_name: str, *, field: str) -> int:
    """The primary key of a ``type_name`` id given for the domain's ``field``.

    A malformed id, or the id of another type, names nothing: NOT_FOUND on that field.
    """
    parsed = parse_id(global_id)
    if parsed is None or parsed[0] != type_name:
        raise not_found(
            msg("{id} is not the id of any {type}.", id=repr(global_id), type=type_name), field
        )
    return parsed[1]


def decode_optional_id(global_id: str | None, type_name: str, *, field: str) -> int | None:
    return None if global_id is None else decode_id(global_id, type_name, field=field)


def id_variables(operation: OperationDefinitionNode) -> list[str]:
    """The names of the operation's variables of type ID (or ID!)."""
    names = []
    for definition in operation.variable_definitions or ():
        type_node = definition.type
        if isinstance(type_node, NonNullTypeNode):
            type_node = type_node.type
        if isinstance(type_node, NamedTypeNode) and type_node.name.value == "ID":
            names.append(definition.variable.name.value)
    return names
