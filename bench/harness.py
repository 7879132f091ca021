"""What the benchmark scripts share: a migrated app on a fresh database, and percentiles."""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from starlette.applications import Starlette

from gql_service.app import create_app
from gql_service.migrations import upgrade_to_head
from gql_service.settings import Settings


async def migrated_app() -> Starlette:
    """The app on DATABASE_URL (an empty database), else on a fresh SQLite file."""
    url = os.environ.get("DATABASE_URL")
    if url is None:
        url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite3'}"
    app = create_app(Settings(database_url=url))
    await upgrade_to_head(app.state.engine)
    return app


def p50_p95(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), statistics.quantiles(values, n=20)[-1]
