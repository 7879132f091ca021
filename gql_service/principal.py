"""Who is acting: the principal of a request, authenticated from its bearer token."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeGuard

from gql_service.messages import Message, msg
from gql_service.models import NAME_MAX

READ_SCOPE = "opportunities:read"
WRITE_SCOPE = "opportunities:write"
SCOPES = (READ_SCOPE, WRITE_SCOPE)

API_KEY_PREFIX = "gqs_"
# NAME_MAX is what createdBy / modifiedBy can hold; longer names, or names with control
# characters, are refused at the door rather than failing a write.


class AuthMethod(enum.StrEnum):
    ANONYMOUS = "anonymous"
    API_KEY = "api_key"
    JWT = "jwt"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: its name (recorded in createdBy / modifiedBy), scopes and how it signed in."""

    name: str
    scopes: frozenset[str] = frozenset()
    method: AuthMethod = AuthMethod.ANONYMOUS

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


# Stands in for the caller of a refused request; it can do nothing.
NOBODY = Principal("", frozenset(), AuthMethod.ANONYMOUS)


class AuthenticationError(Exception):
    """No usable credentials. ``error`` is RFC 6750's code; None when none were sent at all.

    ``description`` is the English text (the ``WWW-Authenticate`` header is ASCII); ``message``
    is what the client reads, in its language.
    """

    def __init__(self, message: Message, *, error: str | None = "invalid_token") -> None:
        super().__init__(str(message))
        self.message = message
        self.description = str(message)
        self.error = error


class SigningKeysUnavailableError(Exception):
    """The identity provider's signing keys could not be fetched: retry later."""


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Principal:
        """The principal a token stands for; raises AuthenticationError when it is not valid."""
        ...


def valid_name(name: object) -> TypeGuard[str]:
    return (
        isinstance(name, str)
        and 0 < len(name) <= NAME_MAX
        and name.strip() == name
        and name.isprintable()
    )


class Authenticator:
    """Turns a request's ``Authorization: Bearer`` header into a principal.

    API keys (``gqs_...``) go to ``api_keys``, anything else to ``jwts``; a kind of token
    without a verifier is refused. Without a header, ``anonymous`` is the principal (development
    mode) or the request is refused (production mode, where ``anonymous`` is None).
    """

    def __init__(
        self,
        *,
        anonymous: Principal | None,
        api_keys: TokenVerifier | None = None,
        jwts: TokenVerifier | None = None,
    ) -> None:
        self.anonymous = anonymous
        self.api_keys = api_keys
        self.jwts = jwts

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        header = headers.get("authorization")
        if header is None:
            if self.anonymous is None:
                raise AuthenticationError(msg("Authentication required."), error=None)
            return self.anonymous
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError(
                msg("Send the token as 'Authorization: Bearer <token>'."), error="invalid_request"
            )
        verifier = self.api_keys if token.startswith(API_KEY_PREFIX) else self.jwts
        if verifier is None:
            raise AuthenticationError(msg("This kind of token is not accepted here."))
        return await verifier.verify(token)
