"""What asyncpg can take of the service's DATABASE_URL (SQLAlchemy's, for psycopg).

The compiled reads and, first, the units of work run on asyncpg connections of their own
(driver_reads.py, driver_writes.py) where the URL says nothing asyncpg cannot: the settings
count that pool in the connection budget only then (settings.py).
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

# What asyncpg reads from a connection URL itself; it would send any other query parameter to
# the server as a setting, and libpq-only ones (connect_timeout, keepalives, ...) would make
# every connection fail.
_ASYNCPG_PARAMETERS = frozenset(
    {
        "host", "port", "dbname", "database", "user", "password", "passfile", "service",
        "sslmode", "sslcert", "sslkey", "sslrootcert", "sslnegotiation", "sslcrl",
        "sslpassword", "ssl_min_protocol_version", "ssl_max_protocol_version",
        "target_session_attrs", "krbsrvname", "gsslib",
    }
)  # fmt: skip


def asyncpg_target(database_url: str) -> tuple[str, dict[str, str]] | None:
    """asyncpg's DSN and server settings for ``database_url`` (SQLAlchemy's, for psycopg), or
    None when it says something asyncpg cannot: then compiled reads stay on psycopg.
    libpq's ``options`` are taken as the ``-c name=value`` settings they hold."""
    url = make_url(database_url)
    settings: dict[str, str] = {}
    query: dict[str, str | tuple[str, ...]] = {}
    for name, value in url.query.items():
        if name == "options" and isinstance(value, str):
            given = _options(value)
            if given is None:
                return None
            settings.update(given)
        elif name == "application_name" and isinstance(value, str):
            continue  # the compiled reads' connections have a name of their own
        elif name in _ASYNCPG_PARAMETERS:
            query[name] = value
        else:
            return None
    dsn = url.set(drivername="postgresql", query=query).render_as_string(hide_password=False)
    return dsn, settings


def _options(value: str) -> dict[str, str] | None:
    """libpq's ``options`` (``-c name=value``, ``-cname=value``, ``--name=value``) as server
    settings; None for anything else (other switches, escaped spaces)."""
    if "\\" in value:
        return None
    words = value.split()
    settings: dict[str, str] = {}
    while words:
        word = words.pop(0)
        if word == "-c" and words:
            word = words.pop(0)
        elif word.startswith(("-c", "--")):
            word = word[2:]
        else:
            return None
        name, equals, setting = word.partition("=")
        if not equals or not name:
            return None
        settings[name.replace("-", "_")] = setting
    return settings
