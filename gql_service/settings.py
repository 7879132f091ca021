"""Settings read from the environment, with safe defaults for the embedded database."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/gql_service.sqlite3"
ENVIRONMENTS = ("development", "production")


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


@dataclass(frozen=True)
class Settings:
    """Everything the app needs to start; build one with ``Settings.from_env()``."""

    database_url: str = DEFAULT_DATABASE_URL
    db_pool_size: int = 10
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
    # --- query cost and limits ---
    max_query_cost: int = 10_000
    max_field_repeats: int = 10
    # --- persisted queries ---
    # --- idempotency ---
    # --- database failures and timeouts ---
    # --- HTTP edge: slow clients, concurrency, headers ---

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        environment = (env.get("GQL_ENV") or cls.environment).strip().lower()
        if environment not in ENVIRONMENTS:
            raise ValueError(
                f"GQL_ENV must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}"
            )
        # Production turns the explorer, introspection and "did you mean" off unless asked for.
        explorer_default = environment != "production"
        return cls(
            database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            db_pool_size=_int(env, "DB_POOL_SIZE", cls.db_pool_size),
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
            # --- query cost and limits ---
            max_query_cost=_int(env, "MAX_QUERY_COST", cls.max_query_cost),
            max_field_repeats=_int(env, "MAX_FIELD_REPEATS", cls.max_field_repeats),
            # --- persisted queries ---
            # --- idempotency ---
            # --- database failures and timeouts ---
            # --- HTTP edge: slow clients, concurrency, headers ---
        )

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

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
