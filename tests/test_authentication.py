"""Authentication and authorization: API keys, JWTs, scopes, production and development mode."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service.api_keys import ApiKeyVerifier, create_api_key, revoke_api_key
from gql_service.app import create_app
from gql_service.jwt_tokens import AuthConfigurationError
from gql_service.principal import AuthenticationError
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork
from tests.operations import (
    CLOSE_OPPORTUNITY,
    CREATE_OPPORTUNITY,
    REOPEN_OPPORTUNITY,
    create_opportunity,
    ok,
    read_opportunity,
)

ISSUER = "https://id.partner.example/"
AUDIENCE = "gql_service"
SECRET = "an HS256 secret of at least thirty-two bytes"
BOTH = "opportunities:read opportunities:write"
LIST = "{ opportunities(first: 5) { totalCount nodes { id state version } } }"
REALM = 'Bearer realm="gql_service"'
INTROSPECTION = "{ __schema { types { name } } }"


class TokenClient:
    """Posts operations with ``Authorization: Bearer <token>``; returns the decoded body."""

    def __init__(self, http: httpx.AsyncClient, token: str | None) -> None:
        self.http = http
        self.token = token

    async def post(self, query: str, **variables: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.post(query, **variables)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http
    finally:
        await app.state.engine.dispose()


def production(settings: Settings, **overrides: Any) -> Settings:
    return replace(settings, environment="production", **overrides)


def jwt_settings(settings: Settings, **overrides: Any) -> Settings:
    defaults = {"api_keys_enabled": False, "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}
    return production(settings, **{**defaults, **overrides})


async def issue_key(engine: AsyncEngine, name: str, *scopes: str) -> str:
    issued = await create_api_key(UnitOfWork(engine, actor="admin"), name=name, scopes=scopes)
    return issued.token


def assert_refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert "data" not in body or body["data"] is None, body
    assert [e["extensions"]["code"] for e in body["errors"]] == [code], body
    return body


def make_token(key: Any, algorithm: str = "HS256", *, kid: str | None = None, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "ada@partner.example",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
        "scope": BOTH,
        **claims,
    }
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


def hs256_with(secret: bytes) -> str:
    """A token signed by hand, since PyJWT itself refuses to use a public key as HMAC secret."""
    header, payload, _ = make_token(SECRET).split(".")
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@pytest.fixture
def sqlite_settings(tmp_path: Path, sqlite_template: Path) -> Settings:
    """For the tests that exercise token checks, not the database: one engine is enough."""
    path = tmp_path / "auth.sqlite3"
    shutil.copyfile(sqlite_template, path)
    return Settings(database_url=f"sqlite+aiosqlite:///{path}", acting_user="tester")


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, path: Path) -> str:
    path.write_bytes(
        private_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return str(path)


def jwk(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(private_key, rsa.RSAPrivateKey):
        data = jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        alg = "RS256"
    else:
        data = jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        alg = "ES256"
    return {**data, "kid": kid, "use": "sig", "alg": alg}


# --- production and development mode ---


async def test_production_refuses_a_request_without_a_token(settings: Settings) -> None:
    async with serving(production(settings, api_keys_enabled=True)) as http:
        response = await http.post("/graphql", json={"query": LIST})
        introspection = await http.post("/graphql", json={"query": INTROSPECTION})

    body = assert_refused(response, 401, "UNAUTHENTICATED")
    assert response.headers["www-authenticate"] == REALM
    assert body["errors"][0]["message"] == "Authentication required."
    assert_refused(introspection, 401, "UNAUTHENTICATED")


async def test_production_will_not_start_without_an_authentication_setting() -> None:
    settings = Settings.from_env({"GQL_ENV": "production"})

    with pytest.raises(AuthConfigurationError, match=r"production mode .* needs an authentication"):
        create_app(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JWT_SECRET": "short"}, "at least 32 bytes"),
        ({"JWT_SECRET": SECRET}, "JWT_ISSUER and JWT_AUDIENCE are required"),
        ({"JWT_SECRET": SECRET, "JWT_JWKS_URL": "https://x/"}, "only one JWT key source"),
        ({"JWT_JWKS_URL": "ftp://x/", "JWT_ISSUER": "i", "JWT_AUDIENCE": "a"}, "http"),
        ({"JWT_PUBLIC_KEY_FILE": "/nonexistent.pem"}, "cannot read"),
        ({"JWT_JWKS_FILE": "/nonexistent.json"}, "cannot read"),
    ],
)
def test_authentication_settings_that_cannot_work_are_refused_at_start(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(AuthConfigurationError, match=message):
        create_app(Settings.from_env({"GQL_ENV": "production", **env}))


def test_unusable_key_files_are_refused_at_start(tmp_path: Path) -> None:
    not_pem = tmp_path / "key.pem"
    not_pem.write_text("not a key")
    weak = tmp_path / "weak.pem"
    pem(rsa.generate_private_key(public_exponent=65537, key_size=1024), weak)
    empty_jwks = tmp_path / "jwks.json"
    empty_jwks.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}))
    common = {"GQL_ENV": "production", "JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE}

    for env, message in [
        ({"JWT_PUBLIC_KEY_FILE": str(not_pem)}, "not a PEM public key"),
        ({"JWT_PUBLIC_KEY_FILE": str(weak)}, "2048"),
        ({"JWT_JWKS_FILE": str(empty_jwks)}, "no RS256 or ES256 signing key"),
    ]:
        with pytest.raises(AuthConfigurationError, match=message):
            create_app(Settings.from_env({**common, **env}))


async def test_development_mode_warns_loudly_and_lets_anonymous_requests_act_as_the_acting_user(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="gql_service.authentication"):
        async with serving(settings) as http:
            created = await create_opportunity(TokenClient(http, None))

    assert created["createdBy"] == "tester"
    assert any("DEVELOPMENT MODE" in r.getMessage() for r in caplog.records)


async def test_development_mode_still_checks_a_token_that_is_sent(settings: Settings) -> None:
    async with serving(settings) as http:
        response = await TokenClient(http, "gqs_0000000000000000_" + "x" * 43).post(LIST)

    assert_refused(response, 401, "UNAUTHENTICATED")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


# --- API keys ---


async def test_a_write_key_acts_under_its_own_name(settings: Settings, engine: AsyncEngine) -> None:
    token = await issue_key(engine, "acme-integration", "opportunities:read", "opportunities:write")

    async with serving(production(settings)) as http:
        gql = TokenClient(http, token)
        opportunity = await create_opportunity(gql)
        close = {"opportunityId": opportunity["id"], "outcome": "WON"}
        closed = ok(await gql(CLOSE_OPPORTUNITY, input=close), "closeOpportunity")
        reopened = ok(
            await gql(REOPEN_OPPORTUNITY, input={"opportunityId": opportunity["id"]}),
            "reopenOpportunity",
        )

    assert opportunity["createdBy"] == "acme-integration"
    assert closed["opportunity"]["modifiedBy"] == "acme-integration"
    assert closed["opportunityClose"]["createdBy"] == "acme-integration"
    assert reopened["canceledCloses"][0]["canceledBy"] == "acme-integration"


async def test_a_read_scoped_key_cannot_mutate_and_nothing_changes(
    settings: Settings, engine: AsyncEngine
) -> None:
    writer = await issue_key(engine, "writer", "opportunities:read", "opportunities:write")
    reader = await issue_key(engine, "reader", "opportunities:read")

    async with serving(production(settings)) as http:
        opportunity = await create_opportunity(TokenClient(http, writer))
        read_only = TokenClient(http, reader)
        close = await read_only.post(
            CLOSE_OPPORTUNITY, input={"opportunityId": opportunity["id"], "outcome": "LOST"}
        )
        create = await read_only.post(
            CREATE_OPPORTUNITY,
            input={"name": "Sneaky", "customerName": "X", "currencyCode": "EUR"},
        )
        after = await read_opportunity(read_only, opportunity["id"])
        listed = await read_only(LIST)

    body = assert_refused(close, 403, "FORBIDDEN")
    assert body["errors"][0]["extensions"]["requiredScope"] == "opportunities:write"
    assert close.headers["www-authenticate"] == (
        f'{REALM}, error="insufficient_scope", scope="opportunities:write"'
    )
    assert_refused(create, 403, "FORBIDDEN")
    assert after["state"] == "OPEN"
    assert after["version"] == opportunity["version"]
    assert after["closeHistory"] == []
    assert listed["data"]["opportunities"]["totalCount"] == 1


async def test_a_write_only_key_cannot_query(settings: Settings, engine: AsyncEngine) -> None:
    token = await issue_key(engine, "writer", "opportunities:write")

    async with serving(production(settings)) as http:
        response = await TokenClient(http, token).post(LIST)

    assert_refused(response, 403, "FORBIDDEN")
    assert 'scope="opportunities:read"' in response.headers["www-authenticate"]


async def test_a_revoked_key_is_refused(settings: Settings, engine: AsyncEngine) -> None:
    token = await issue_key(engine, "partner", "opportunities:read")

    async with serving(production(settings, api_key_cache_seconds=0)) as http:
        before = await TokenClient(http, token).post(LIST)
        await revoke_api_key(UnitOfWork(engine, actor="admin"), key="partner")
        after = await TokenClient(http, token).post(LIST)

    assert before.status_code == 200
    body = assert_refused(after, 401, "UNAUTHENTICATED")
    assert body["errors"][0]["message"] == "Unknown or revoked API key."
    assert 'error="invalid_token"' in after.headers["www-authenticate"]


async def test_a_revoked_key_is_refused_once_the_cache_period_has_passed(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1_000.0]
    monkeypatch.setattr("gql_service.api_keys.time.monotonic", lambda: clock[0])
    async with serving(production(sqlite_settings, api_key_cache_seconds=5)) as http:
        engine = http._transport.app.state.engine  # type: ignore[attr-defined]
        token = await issue_key(engine, "partner", "opportunities:read")
        gql = TokenClient(http, token)
        first = await gql.post(LIST)
        await revoke_api_key(UnitOfWork(engine, actor="admin"), key="partner")
        clock[0] += 4
        within_bound = await gql.post(LIST)
        clock[0] += 2
        past_bound = await gql.post(LIST)

    assert first.status_code == within_bound.status_code == 200
    assert_refused(past_bound, 401, "UNAUTHENTICATED")


async def test_a_key_with_a_wrong_secret_is_refused_even_when_its_id_is_cached(
    sqlite_settings: Settings,
) -> None:
    async with serving(production(sqlite_settings)) as http:
        engine = http._transport.app.state.engine  # type: ignore[attr-defined]
        token = await issue_key(engine, "partner", "opportunities:read")
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        good = await TokenClient(http, token).post(LIST)
        bad = await TokenClient(http, forged).post(LIST)
        unknown = await TokenClient(http, "gqs_" + "0" * 16 + token[20:]).post(LIST)

    assert good.status_code == 200
    assert_refused(bad, 401, "UNAUTHENTICATED")
    assert_refused(unknown, 401, "UNAUTHENTICATED")


async def test_api_keys_are_refused_when_they_are_not_enabled(
    sqlite_settings: Settings,
) -> None:
    settings = jwt_settings(sqlite_settings, jwt_secret=SECRET)
    async with serving(settings) as http:
        engine = http._transport.app.state.engine  # type: ignore[attr-defined]
        token = await issue_key(engine, "partner", "opportunities:read")
        response = await TokenClient(http, token).post(LIST)

    body = assert_refused(response, 401, "UNAUTHENTICATED")
    assert body["errors"][0]["message"] == "This kind of token is not accepted here."


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Bearer gqs_",
        "Bearer gqs_not-a-key",
        "Bearer a.b.c",
        "Bearer eyJhbGciOiJub25lIn0.e30.",
        "Bearer " + "x" * 8_000,
        "Bearer eyJ" + "\u00e9",
        'Bearer "quoted", error="x"',
    ],
)
async def test_malformed_credentials_get_401_and_never_a_server_error(
    sqlite_settings: Settings, authorization: str
) -> None:
    settings = jwt_settings(sqlite_settings, jwt_secret=SECRET, api_keys_enabled=True)
    async with serving(settings) as http:
        response = await http.post(
            "/graphql",
            json={"query": LIST},
            headers={"authorization": authorization.encode("latin-1")},  # type: ignore[dict-item]
        )

    assert_refused(response, 401, "UNAUTHENTICATED")
    assert response.headers["www-authenticate"].startswith(REALM)


# --- JWTs ---


async def test_an_hs256_jwt_acts_under_its_subject(settings: Settings) -> None:
    token = make_token(SECRET)

    async with serving(jwt_settings(settings, jwt_secret=SECRET)) as http:
        gql = TokenClient(http, token)
        opportunity = await create_opportunity(gql)
        close = {"opportunityId": opportunity["id"], "outcome": "LOST"}
        closed = ok(await gql(CLOSE_OPPORTUNITY, input=close), "closeOpportunity")

    assert opportunity["createdBy"] == "ada@partner.example"
    assert opportunity["modifiedBy"] == "ada@partner.example"
    assert closed["opportunity"]["modifiedBy"] == "ada@partner.example"
    assert closed["opportunityClose"]["createdBy"] == "ada@partner.example"


@pytest.mark.parametrize("curve", ["rsa", "ec"])
async def test_rs256_and_es256_jwts_verify_against_a_pem_public_key(
    sqlite_settings: Settings,
    tmp_path: Path,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    curve: str,
) -> None:
    key, algorithm = (rsa_key, "RS256") if curve == "rsa" else (ec_key, "ES256")
    settings = jwt_settings(sqlite_settings, jwt_public_key_file=pem(key, tmp_path / "key.pem"))
    other = (
        rsa.generate_private_key(65537, 2048)
        if curve == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )

    async with serving(settings) as http:
        accepted = await TokenClient(http, make_token(key, algorithm)).post(LIST)
        forged = await TokenClient(http, make_token(other, algorithm)).post(LIST)
        # Algorithm confusion: the public key's bytes used as an HMAC secret.
        confused = await TokenClient(http, hs256_with((tmp_path / "key.pem").read_bytes())).post(
            LIST
        )

    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["data"]["opportunities"]["totalCount"] == 0
    body = assert_refused(forged, 401, "UNAUTHENTICATED")
    assert body["errors"][0]["message"] == "Token signature does not verify."
    assert_refused(confused, 401, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": int(time.time()) - 600}, "Token has expired."),
        ({"nbf": int(time.time()) + 600}, "Token is not valid yet."),
        ({"iss": "https://evil.example/"}, "Token is from another issuer."),
        ({"aud": "someone-else"}, "Token is for another audience."),
        ({"exp": None}, "Invalid token."),
        ({"aud": None}, "Invalid token."),
        ({"sub": None}, "Token has no usable 'sub' claim."),
        ({"sub": "x" * 201}, "Token has no usable 'sub' claim."),
        ({"sub": "nul\x00byte"}, "Token has no usable 'sub' claim."),
    ],
)
async def test_jwts_with_bad_claims_are_refused(
    sqlite_settings: Settings, claims: dict[str, Any], message: str
) -> None:
    async with serving(jwt_settings(sqlite_settings, jwt_secret=SECRET)) as http:
        response = await TokenClient(http, make_token(SECRET, **claims)).post(LIST)

    body = assert_refused(response, 401, "UNAUTHENTICATED")
    assert body["errors"][0]["message"] == message
    assert response.headers["www-authenticate"] == (
        f'{REALM}, error="invalid_token", error_description="{message}"'
    )


async def test_a_wrongly_signed_hs256_jwt_is_refused(sqlite_settings: Settings) -> None:
    token = make_token("another secret that is also at least 32 bytes long")
    async with serving(jwt_settings(sqlite_settings, jwt_secret=SECRET)) as http:
        response = await TokenClient(http, token).post(LIST)

    body = assert_refused(response, 401, "UNAUTHENTICATED")
    assert body["errors"][0]["message"] == "Token signature does not verify."


async def test_clock_skew_within_the_leeway_is_accepted(sqlite_settings: Settings) -> None:
    now = int(time.time())
    token = make_token(SECRET, exp=now - 10, nbf=now + 10)
    async with serving(jwt_settings(sqlite_settings, jwt_secret=SECRET)) as http:
        response = await TokenClient(http, token).post(LIST)

    assert response.status_code == 200, response.text


async def test_scopes_come_from_scope_or_scp_and_a_configurable_name_claim(
    sqlite_settings: Settings,
) -> None:
    settings = jwt_settings(sqlite_settings, jwt_secret=SECRET, jwt_name_claim="email")
    reader = make_token(SECRET, scope=None, scp=["opportunities:read"], email="bo@partner.example")
    writer = make_token(SECRET, email="cy@partner.example")
    nameless = make_token(SECRET)
    async with serving(settings) as http:
        read = await TokenClient(http, reader).post(LIST)
        refused = await TokenClient(http, reader).post(
            CREATE_OPPORTUNITY, input={"name": "N", "customerName": "C", "currencyCode": "EUR"}
        )
        created = await create_opportunity(TokenClient(http, writer))
        no_name = await TokenClient(http, nameless).post(LIST)

    assert read.status_code == 200
    assert_refused(refused, 403, "FORBIDDEN")
    assert created["createdBy"] == "cy@partner.example"
    assert_refused(no_name, 401, "UNAUTHENTICATED")


async def test_a_jwks_file_verifies_rs256_and_es256_tokens_by_kid(
    sqlite_settings: Settings,
    tmp_path: Path,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(rsa_key, "r1"), jwk(ec_key, "e1")]}))
    async with serving(jwt_settings(sqlite_settings, jwt_jwks_file=str(path))) as http:
        by_rsa = await TokenClient(http, make_token(rsa_key, "RS256", kid="r1")).post(LIST)
        by_ec = await TokenClient(http, make_token(ec_key, "ES256", kid="e1")).post(LIST)
        swapped = await TokenClient(http, make_token(rsa_key, "RS256", kid="e1")).post(LIST)
        unknown = await TokenClient(http, make_token(rsa_key, "RS256", kid="zz")).post(LIST)

    assert by_rsa.status_code == by_ec.status_code == 200
    assert_refused(swapped, 401, "UNAUTHENTICATED")
    body = assert_refused(unknown, 401, "UNAUTHENTICATED")
    assert body["errors"][0]["message"] == "Token signed with an unknown key."


@dataclass
class JwksServer:
    url: str
    document: dict[str, Any]
    fetches: list[float] = field(default_factory=list)


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    """A JWKS endpoint on 127.0.0.1, as an identity provider would publish it."""
    state = JwksServer(url="", document={"keys": []})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches.append(time.monotonic())
            body = json.dumps(state.document).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_a_jwks_url_is_fetched_cached_and_refreshed_on_an_unknown_kid(
    sqlite_settings: Settings,
    jwks_server: JwksServer,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    jwks_server.document = {"keys": [jwk(rsa_key, "2026-01")]}
    settings = jwt_settings(
        sqlite_settings, jwt_jwks_url=jwks_server.url, jwks_refresh_min_seconds=0
    )
    async with serving(settings) as http:
        first = await TokenClient(http, make_token(rsa_key, "RS256", kid="2026-01")).post(LIST)
        again = await TokenClient(http, make_token(rsa_key, "RS256", kid="2026-01")).post(LIST)
        fetched_once = len(jwks_server.fetches)
        # The provider rotates its keys: a token with the new kid makes the service look again.
        jwks_server.document = {"keys": [jwk(rsa_key, "2026-01"), jwk(ec_key, "2026-02")]}
        rotated = await TokenClient(http, make_token(ec_key, "ES256", kid="2026-02")).post(LIST)

    assert first.status_code == again.status_code == rotated.status_code == 200
    assert fetched_once == 1
    assert len(jwks_server.fetches) == 2


async def test_unknown_kids_do_not_turn_into_a_flood_of_jwks_fetches(
    sqlite_settings: Settings, jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks_server.document = {"keys": [jwk(rsa_key, "k1")]}
    settings = jwt_settings(sqlite_settings, jwt_jwks_url=jwks_server.url)
    async with serving(settings) as http:
        responses = [
            await TokenClient(http, make_token(rsa_key, "RS256", kid=f"made-up-{i}")).post(LIST)
            for i in range(20)
        ]

    for response in responses:
        assert_refused(response, 401, "UNAUTHENTICATED")
    assert len(jwks_server.fetches) == 1


async def test_an_unreachable_jwks_url_answers_service_unavailable(
    sqlite_settings: Settings, rsa_key: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    settings = jwt_settings(
        sqlite_settings, jwt_jwks_url="http://127.0.0.1:9/jwks.json", jwks_fetch_timeout_ms=500
    )
    async with serving(settings) as http:
        response = await TokenClient(http, make_token(rsa_key, "RS256", kid="k1")).post(LIST)

    body = assert_refused(response, 503, "SERVICE_UNAVAILABLE")
    assert body["errors"][0]["extensions"]["retryAfter"] == settings.db_retry_after_seconds
    assert "Traceback" not in caplog.text


async def test_cors_preflight_allows_the_authorization_header(sqlite_settings: Settings) -> None:
    settings = replace(sqlite_settings, cors_origins=("https://app.partner.example",))
    async with serving(settings) as http:
        response = await http.options(
            "/graphql",
            headers={
                "origin": "https://app.partner.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type",
            },
        )

    assert response.status_code == 200
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


async def test_requests_that_need_a_key_looked_up_at_once_share_one_look_up(
    settings: Settings, engine: AsyncEngine
) -> None:
    """When a busy key's cache entry expires, every request in flight needs it looked up; they
    wait for one look-up instead of each running its own (on connections of their own)."""
    token = await issue_key(engine, "partner", "opportunities:read")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    verifier = ApiKeyVerifier(engine, cache_seconds=5)
    look_ups: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM api_key" in statement:
            look_ups.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        results = await asyncio.gather(
            *(verifier.verify(forged if n == 7 else token) for n in range(20)),
            return_exceptions=True,
        )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)

    assert len(look_ups) == 1
    refused = results.pop(7)
    assert isinstance(refused, AuthenticationError)
    assert {getattr(r, "name", r) for r in results} == {"partner"}
