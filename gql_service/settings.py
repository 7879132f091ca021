"""Settings read from the environment, with safe defaults for the embedded database."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gql_service.asyncpg_urls import asyncpg_target

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/gql_service.sqlite3"
ENVIRONMENTS = ("development", "production")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")
DRIVERS = ("asyncpg", "psycopg")
TRACE_EXPORTERS = ("otlp", "console")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _trace_exporters(env: Mapping[str, str]) -> tuple[str, ...]:
    """The span exporters the standard OTEL_* variables ask for; empty: tracing is off.

    OTEL_TRACES_EXPORTER names them (otlp, console; none); an OTLP endpoint alone means otlp;
    OTEL_SDK_DISABLED=true turns everything off. Unlike the SDK, nothing set means off.
    """
    if (env.get("OTEL_SDK_DISABLED") or "").strip().lower() == "true":
        return ()
    raw = (env.get("OTEL_TRACES_EXPORTER") or "").strip().lower()
    if not raw:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return ("otlp",) if endpoint else ()
    names = tuple(n.strip() for n in raw.split(",") if n.strip() and n.strip() != "none")
    unknown = [n for n in names if n not in TRACE_EXPORTERS]
    if unknown:
        raise ValueError(
            f"OTEL_TRACES_EXPORTER: unsupported exporter {unknown[0]!r}; "
            f"use {', '.join(TRACE_EXPORTERS)} or none"
        )
    return names


@dataclass(frozen=True)
class Settings:
    """Everything the app needs to start; build one with ``Settings.from_env()``."""

    database_url: str = DEFAULT_DATABASE_URL
    # Connections per pool and worker, before the database's limit (``pool_size_per_worker``).
    # Few: a worker is one thread whose own work per request takes about as long as its
    # statement, so it keeps no more than a few statements usefully in flight; a database runs
    # best with a few transactions per core at a time; and requests beyond that wait in the
    # pool's fair queue instead of in the database's scheduler (README, Pools and workers).
    db_pool_size: int = 3
    # Open the asyncpg pool's connections at start-up rather than when load first needs them.
    db_pool_warm: bool = True
    statement_timeout_ms: int = 5_000
    isolation_level: str | None = None
    transaction_retries: int = 8
    max_page_size: int = 100
    default_page_size: int = 20
    max_query_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 2_000
    max_body_bytes: int = 1_000_000
    environment: str = "development"
    graphiql: bool = True
    introspection: bool = True
    field_suggestions: bool = True
    cors_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    acting_user: str = field(default="system")
    # --- authentication and authorization ---
    api_keys_enabled: bool = True
    api_key_cache_seconds: int = 5
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_public_key_file: str | None = None
    jwt_jwks_file: str | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway_seconds: int = 30
    jwt_name_claim: str = "sub"
    jwks_cache_seconds: int = 300
    jwks_refresh_min_seconds: int = 30
    jwks_fetch_timeout_ms: int = 3_000
    # --- query cost and limits ---
    max_query_cost: int = 10_000
    max_field_repeats: int = 10
    # --- compiled reads, and the fast lane's writes ---
    compiled_reads: bool = True
    # The driver of compiled reads' statements on PostgreSQL at READ COMMITTED (driver_reads.py).
    compiled_reads_driver: str = "asyncpg"
    # Where units of work run first when compiled reads are on asyncpg (driver_writes.py).
    writes_driver: str = "asyncpg"
    fast_writes: bool = True
    # --- persisted queries ---
    apq_enabled: bool = True
    persisted_query_cache_size: int = 1_000
    trusted_documents: str | None = None
    # --- idempotency ---
    idempotency_key_ttl_seconds: int = 86_400
    idempotency_wait_ms: int = 10_000
    # --- database failures and timeouts ---
    db_pool_timeout_ms: int = 2_000
    db_connect_timeout_ms: int = 2_000
    db_deadline_ms: int = 6_000
    readiness_timeout_ms: int = 1_000
    db_retry_after_seconds: int = 2
    # --- HTTP edge: slow clients, concurrency, headers ---
    body_read_timeout_ms: int = 10_000
    max_concurrent_requests: int = 100
    max_header_bytes: int = 16_384
    max_headers: int = 100
    header_read_timeout_ms: int = 10_000
    max_json_depth: int = 32
    # --- database pool and workers ---
    workers: int = 1
    db_max_connections: int = 100
    db_reserved_connections: int = 10
    # uvicorn's event loop: auto (uvloop when installed, as it is), uvloop or asyncio.
    event_loop: str = "auto"
    # --- metrics and tracing ---
    metrics: bool = True
    metrics_token: str | None = field(default=None, repr=False)
    metrics_max_operation_names: int = 200
    # OpenTelemetry span exporters from OTEL_TRACES_EXPORTER (tracing.py); empty: tracing off.
    trace_exporters: tuple[str, ...] = ()
    # --- subscriptions ---
    subscriptions: bool = True
    max_subscriptions_per_connection: int = 20
    max_websocket_connections: int = 500
    connection_init_timeout_ms: int = 10_000
    # --- the close-opportunity page ---
    # Serve the page at /app (it calls /graphql with the user's own credentials).
    app_page: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        environment = _choice(env, "GQL_ENV", cls.environment, ENVIRONMENTS)
        event_loop = _choice(env, "EVENT_LOOP", cls.event_loop, EVENT_LOOPS)
        compiled_reads_driver = _choice(
            env, "COMPILED_READS_DRIVER", cls.compiled_reads_driver, DRIVERS
        )
        writes_driver = _choice(env, "WRITES_DRIVER", cls.writes_driver, DRIVERS)
        # Production turns the explorer, introspection and "did you mean" off unless asked for.
        explorer_default = environment != "production"
        return cls(
            database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            db_pool_size=_int(env, "DB_POOL_SIZE", cls.db_pool_size),
            db_pool_warm=_bool(env, "DB_POOL_WARM", cls.db_pool_warm),
            statement_timeout_ms=_int(env, "STATEMENT_TIMEOUT_MS", cls.statement_timeout_ms),
            isolation_level=env.get("DB_ISOLATION_LEVEL") or None,
            transaction_retries=_int(env, "TRANSACTION_RETRIES", cls.transaction_retries),
            max_page_size=_int(env, "MAX_PAGE_SIZE", cls.max_page_size),
            default_page_size=_int(env, "DEFAULT_PAGE_SIZE", cls.default_page_size),
            max_query_depth=_int(env, "MAX_QUERY_DEPTH", cls.max_query_depth),
            max_aliases=_int(env, "MAX_ALIASES", cls.max_aliases),
            max_tokens=_int(env, "MAX_TOKENS", cls.max_tokens),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", cls.max_body_bytes),
            environment=environment,
            graphiql=_bool(env, "GRAPHIQL", explorer_default),
            introspection=_bool(env, "INTROSPECTION", explorer_default),
            field_suggestions=_bool(env, "FIELD_SUGGESTIONS", explorer_default),
            cors_origins=tuple(
                o.strip() for o in env.get("CORS_ORIGINS", "").split(",") if o.strip()
            ),
            log_level=env.get("LOG_LEVEL") or cls.log_level,
            acting_user=env.get("ACTING_USER") or cls.acting_user,
            # --- authentication and authorization ---
            # API keys count as an authentication setting in production only when switched on.
            api_keys_enabled=_bool(env, "API_KEYS_ENABLED", environment != "production"),
            api_key_cache_seconds=_int(env, "API_KEY_CACHE_SECONDS", cls.api_key_cache_seconds),
            jwt_secret=env.get("JWT_SECRET") or None,
            jwt_public_key_file=env.get("JWT_PUBLIC_KEY_FILE") or None,
            jwt_jwks_file=env.get("JWT_JWKS_FILE") or None,
            jwt_jwks_url=env.get("JWT_JWKS_URL") or None,
            jwt_issuer=env.get("JWT_ISSUER") or None,
            jwt_audience=env.get("JWT_AUDIENCE") or None,
            jwt_leeway_seconds=_int(env, "JWT_LEEWAY_SECONDS", cls.jwt_leeway_seconds),
            jwt_name_claim=env.get("JWT_NAME_CLAIM") or cls.jwt_name_claim,
            jwks_cache_seconds=_int(env, "JWKS_CACHE_SECONDS", cls.jwks_cache_seconds),
            jwks_refresh_min_seconds=_int(
                env, "JWKS_REFRESH_MIN_SECONDS", cls.jwks_refresh_min_seconds
            ),
            jwks_fetch_timeout_ms=_int(env, "JWKS_FETCH_TIMEOUT_MS", cls.jwks_fetch_timeout_ms),
            # --- query cost and limits ---
            max_query_cost=_int(env, "MAX_QUERY_COST", cls.max_query_cost),
            max_field_repeats=_int(env, "MAX_FIELD_REPEATS", cls.max_field_repeats),
            # --- compiled reads ---
            compiled_reads=_bool(env, "COMPILED_READS", cls.compiled_reads),
            compiled_reads_driver=compiled_reads_driver,
            writes_driver=writes_driver,
            fast_writes=_bool(env, "FAST_WRITES", cls.fast_writes),
            # --- persisted queries ---
            apq_enabled=_bool(env, "APQ_ENABLED", cls.apq_enabled),
            persisted_query_cache_size=_int(
                env, "PERSISTED_QUERY_CACHE_SIZE", cls.persisted_query_cache_size
            ),
            trusted_documents=env.get("TRUSTED_DOCUMENTS") or None,
            # --- idempotency ---
            idempotency_key_ttl_seconds=_int(
                env, "IDEMPOTENCY_KEY_TTL_SECONDS", cls.idempotency_key_ttl_seconds
            ),
            idempotency_wait_ms=_int(env, "IDEMPOTENCY_WAIT_MS", cls.idempotency_wait_ms),
            # --- database failures and timeouts ---
            db_pool_timeout_ms=_int(env, "DB_POOL_TIMEOUT_MS", cls.db_pool_timeout_ms),
            db_connect_timeout_ms=_int(env, "DB_CONNECT_TIMEOUT_MS", cls.db_connect_timeout_ms),
            db_deadline_ms=_int(env, "DB_DEADLINE_MS", cls.db_deadline_ms),
            readiness_timeout_ms=_int(env, "READINESS_TIMEOUT_MS", cls.readiness_timeout_ms),
            db_retry_after_seconds=_int(env, "DB_RETRY_AFTER_SECONDS", cls.db_retry_after_seconds),
            # --- HTTP edge: slow clients, concurrency, headers ---
            body_read_timeout_ms=_int(env, "BODY_READ_TIMEOUT_MS", cls.body_read_timeout_ms),
            max_concurrent_requests=_int(
                env, "MAX_CONCURRENT_REQUESTS", cls.max_concurrent_requests
            ),
            max_header_bytes=_int(env, "MAX_HEADER_BYTES", cls.max_header_bytes),
            max_headers=_int(env, "MAX_HEADERS", cls.max_headers),
            header_read_timeout_ms=_int(env, "HEADER_READ_TIMEOUT_MS", cls.header_read_timeout_ms),
            max_json_depth=_int(env, "MAX_JSON_DEPTH", cls.max_json_depth),
            # --- database pool and workers ---
            workers=_int(env, "WORKERS", cls.workers),
            db_max_connections=_int(env, "DB_MAX_CONNECTIONS", cls.db_max_connections),
            db_reserved_connections=_int(
                env, "DB_RESERVED_CONNECTIONS", cls.db_reserved_connections
            ),
            event_loop=event_loop,
            # --- metrics and tracing ---
            # Off in production unless switched on, or protected by a token.
            metrics=_bool(
                env, "METRICS", environment != "production" or bool(env.get("METRICS_TOKEN"))
            ),
            metrics_token=env.get("METRICS_TOKEN") or None,
            metrics_max_operation_names=_int(
                env, "METRICS_MAX_OPERATION_NAMES", cls.metrics_max_operation_names
            ),
            trace_exporters=_trace_exporters(env),
            # --- subscriptions ---
            subscriptions=_bool(env, "SUBSCRIPTIONS", cls.subscriptions),
            max_subscriptions_per_connection=_int(
                env, "MAX_SUBSCRIPTIONS_PER_CONNECTION", cls.max_subscriptions_per_connection
            ),
            max_websocket_connections=_int(
                env, "MAX_WEBSOCKET_CONNECTIONS", cls.max_websocket_connections
            ),
            connection_init_timeout_ms=_int(
                env, "CONNECTION_INIT_TIMEOUT_MS", cls.connection_init_timeout_ms
            ),
            # --- the close-opportunity page ---
            app_page=_bool(env, "APP_PAGE", cls.app_page),
        )

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def reads_autocommit(self) -> bool:
        """True when reads need no transaction: PostgreSQL at READ COMMITTED (the default),
        where each statement takes its own snapshot anyway (read_session.py)."""
        if self.is_sqlite:
            return False
        level = (self.isolation_level or "READ COMMITTED").upper().replace("_", " ")
        return level in {"READ COMMITTED", "AUTOCOMMIT"}

    @property
    def compiled_reads_on_asyncpg(self) -> bool:
        """True when compiled reads (and, first, units of work) run on a pool of asyncpg
        connections (driver_reads.py): asked for, and DATABASE_URL says nothing asyncpg cannot
        take (asyncpg_urls.py)."""
        return (
            self.reads_autocommit
            and self.compiled_reads
            and self.compiled_reads_driver == "asyncpg"
            and asyncpg_target(self.database_url) is not None
        )

    @property
    def pools_per_worker(self) -> int:
        """On PostgreSQL at READ COMMITTED, two (one for reads, in autocommit, and one for
        transactions), and a third of asyncpg connections for compiled reads unless
        COMPILED_READS_DRIVER=psycopg; one otherwise."""
        if not self.reads_autocommit:
            return 1
        return 3 if self.compiled_reads_on_asyncpg else 2

    @property
    def pool_size_per_worker(self) -> int:
        """DB_POOL_SIZE, capped so that every worker's pools fit the database's connections.

        The workers' pools together never exceed DB_MAX_CONNECTIONS - DB_RESERVED_CONNECTIONS;
        pools never overflow (an overflow connection is closed on return, and that churn is
        what made reads slower past 8 clients): a request waits for a pooled connection.
        """
        usable = max(1, self.db_max_connections - self.db_reserved_connections)
        return max(
            1, min(self.db_pool_size, usable // (max(1, self.workers) * self.pools_per_worker))
        )

    @property
    def tracing(self) -> bool:
        return bool(self.trace_exporters)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        """The database file of an SQLite URL, or None for PostgreSQL and in-memory SQLite."""
        if not self.is_sqlite:
            return None
        _, _, path = self.database_url.partition(":///")
        if not path or path == ":memory:":
            return None
        return Path(path)
