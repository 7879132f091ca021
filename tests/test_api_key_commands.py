"""The API key commands: create prints the key once, list hides secrets, revoke works."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx

from gql_service.app import create_app
from gql_service.settings import Settings

KEY = re.compile(r"gqs_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")


def run(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gql_service", *args],
        check=check,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


async def status_with(settings: Settings, token: str) -> int:
    app = create_app(replace(settings, environment="production", api_key_cache_seconds=0))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as http:
            response = await http.post(
                "/graphql",
                json={"query": "{ competitors { totalCount } }"},
                headers={"authorization": f"Bearer {token}"},
            )
    finally:
        await app.state.engine.dispose()
    return response.status_code


async def test_api_keys_are_created_once_listed_without_secrets_and_revoked(
    tmp_path: Path,
) -> None:
    database = tmp_path / "keys.sqlite3"
    url = f"sqlite+aiosqlite:///{database}"
    env = {"DATABASE_URL": url, "PATH": "", "ACTING_USER": "ops@example.com"}
    run("migrate", env=env)

    created = run("create-api-key", "--name", "acme", "--scopes", "opportunities:read", env=env)
    token = created.stdout.strip()
    listed = run("list-api-keys", env=env).stdout
    duplicate = run(
        "create-api-key", "--name", "acme", "--scopes", "opportunities:read", env=env, check=False
    )
    settings = Settings(database_url=url)
    before = await status_with(settings, token)
    revoked = run("revoke-api-key", "acme", env=env).stdout
    after = await status_with(settings, token)
    unknown = run("revoke-api-key", "nobody", env=env, check=False)

    assert KEY.fullmatch(token), created.stdout
    assert "shown once" in created.stderr
    assert token not in created.stderr
    key_id = token[:20]
    assert key_id in listed
    assert "acme" in listed
    assert "[opportunities:read]" in listed
    assert "by ops@example.com" in listed
    assert "active" in listed
    assert token[21:] not in listed
    with sqlite3.connect(database) as connection:
        stored = connection.execute("SELECT key_id, secret_hash FROM api_key").fetchall()
    assert stored == [(key_id, hashlib.sha256(token.encode()).hexdigest())]
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr
    assert before == 200
    assert "revoked" in revoked
    assert after == 401
    assert unknown.returncode == 1
    assert "no API key" in unknown.stderr


def test_a_key_can_be_revoked_by_its_key_id_and_revoking_twice_changes_nothing(
    tmp_path: Path,
) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/k.sqlite3", "PATH": ""}
    run("migrate", env=env)
    token = run(
        "create-api-key", "--name", "p", "--scopes", "opportunities:write", env=env
    ).stdout.strip()

    first = run("revoke-api-key", token[:20], env=env).stdout
    second = run("revoke-api-key", token[:20], env=env).stdout

    assert "revoked 20" in first
    assert first == second


def test_unknown_scopes_and_bad_names_are_refused(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/k.sqlite3", "PATH": ""}
    run("migrate", env=env)

    scope = run("create-api-key", "--name", "p", "--scopes", "admin", env=env, check=False)
    name = run(
        "create-api-key",
        "--name",
        " padded ",
        "--scopes",
        "opportunities:read",
        env=env,
        check=False,
    )

    assert scope.returncode == 2
    assert "invalid choice" in scope.stderr
    assert name.returncode == 1
    assert "printable characters" in name.stderr


def test_serve_exits_non_zero_in_production_without_authentication() -> None:
    completed = run("serve", env={"GQL_ENV": "production", "PATH": ""}, check=False)

    assert completed.returncode == 2
    assert "production mode (GQL_ENV=production) needs an authentication setting" in (
        completed.stderr
    )
