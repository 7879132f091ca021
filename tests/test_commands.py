"""The command line: migrate, seed-demo, export-schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service.seed import is_empty, seed_demo


def run(*args: str, env: dict[str, str]) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "gql_service", *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return completed.stdout


def test_migrate_then_seed_loads_demo_data_once(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/demo.sqlite3", "PATH": ""}

    assert "at head" in run("migrate", env=env)
    assert "loaded demo data: 8 opportunities" in run("seed-demo", "--if-empty", env=env)
    assert "already has data" in run("seed-demo", "--if-empty", env=env)


def test_export_schema_prints_the_sdl() -> None:
    sdl = subprocess.run(
        [sys.executable, "-m", "gql_service", "export-schema"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    assert "type Opportunity implements Node" in sdl
    assert "union CloseOpportunityError" in sdl


async def test_the_demo_data_covers_every_state(engine: AsyncEngine) -> None:
    assert await is_empty(engine)

    await seed_demo(engine)

    async with engine.connect() as connection:
        opportunity_states = set(
            (await connection.execute(text("SELECT DISTINCT state FROM opportunity"))).scalars()
        )
        quote_states = set(
            (await connection.execute(text("SELECT DISTINCT state FROM quote"))).scalars()
        )
        closes = set(
            (
                await connection.execute(text("SELECT DISTINCT state FROM opportunity_close"))
            ).scalars()
        )
        competitors = (await connection.execute(text("SELECT count(*) FROM competitor"))).scalar()
        violations = (
            await connection.execute(
                text(
                    "SELECT count(*) FROM opportunity o JOIN quote q ON q.opportunity_id = o.id "
                    "WHERE o.state <> 'OPEN' AND q.state IN ('DRAFT', 'ACTIVE')"
                )
            )
        ).scalar()
    assert opportunity_states == {"OPEN", "WON", "LOST"}
    assert quote_states == {"DRAFT", "ACTIVE", "WON", "CLOSED"}
    assert closes == {"COMPLETED", "CANCELED"}
    assert competitors == 3
    assert violations == 0
    assert not await is_empty(engine)
