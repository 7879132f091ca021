"""Builds the request authenticator from the settings, and refuses settings that cannot work."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service.api_keys import ApiKeyVerifier
from gql_service.jwt_tokens import AuthConfigurationError, JwtVerifier, jwt_verifier
from gql_service.principal import SCOPES, Authenticator, AuthMethod, Principal
from gql_service.settings import Settings

log = logging.getLogger(__name__)

NO_AUTHENTICATION = (
    "production mode (GQL_ENV=production) needs an authentication setting: configure a JWT key "
    "(JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_FILE or JWT_JWKS_URL, with JWT_ISSUER and "
    "JWT_AUDIENCE) and/or set API_KEYS_ENABLED=true"
)


def check_authentication_settings(settings: Settings) -> JwtVerifier | None:
    """Raise AuthConfigurationError unless the settings can authenticate as they say."""
    jwts = jwt_verifier(settings)
    if settings.is_production and jwts is None and not settings.api_keys_enabled:
        raise AuthConfigurationError(NO_AUTHENTICATION)
    return jwts


def build_authenticator(settings: Settings, engine: AsyncEngine) -> Authenticator:
    jwts = check_authentication_settings(settings)
    api_keys = (
        ApiKeyVerifier(engine, cache_seconds=settings.api_key_cache_seconds)
        if settings.api_keys_enabled
        else None
    )
    anonymous = None
    if not settings.is_production:
        anonymous = Principal(settings.acting_user, frozenset(SCOPES), AuthMethod.ANONYMOUS)
        log.warning(
            "!!! DEVELOPMENT MODE: requests without a token are NOT authenticated; they act as "
            "%r with every scope. Never expose this service like this: set GQL_ENV=production "
            "and configure JWT_* or API_KEYS_ENABLED. !!!",
            settings.acting_user,
        )
    return Authenticator(anonymous=anonymous, api_keys=api_keys, jwts=jwts)
