"""Command line: serve, migrate, seed-demo, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from gql_service.server import configure_logging, uvicorn_options
from gql_service.settings import Settings


async def _migrate(settings: Settings) -> None:
    from gql_service.database import create_engine
    from gql_service.migrations import upgrade_to_head

    engine = create_engine(settings)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


async def _seed(settings: Settings, *, only_if_empty: bool) -> str:
    from gql_service.database import create_engine
    from gql_service.seed import is_empty, seed_demo

    engine = create_engine(settings)
    try:
        if only_if_empty and not await is_empty(engine):
            return "database already has data; demo data not loaded"
        count = await seed_demo(engine)
        return f"loaded demo data: {count} opportunities"
    finally:
        await engine.dispose()


def export_schema_text() -> str:
    from gql_service.graphql.schema import build_schema

    return build_schema().as_str() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gql_service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API (GraphiQL at /graphql)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    commands.add_parser("migrate", help="bring the database schema up to date")
    seed = commands.add_parser("seed-demo", help="load the demo data set")
    seed.add_argument(
        "--if-empty", action="store_true", help="only when there are no opportunities yet"
    )
    export = commands.add_parser("export-schema", help="print or write the GraphQL SDL")
    export.add_argument("--output", type=Path, help="file to write (default: stdout)")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    configure_logging(settings)
    if args.command == "serve":
        import uvicorn

        uvicorn.run(
            "gql_service.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            # Logging, limits and headers travel in the config to every worker process.
            **uvicorn_options(settings),
        )
    elif args.command == "migrate":
        asyncio.run(_migrate(settings))
        print(f"database at head: {settings.database_url}")
    elif args.command == "seed-demo":
        print(asyncio.run(_seed(settings, only_if_empty=args.if_empty)))
    elif args.command == "export-schema":
        sdl = export_schema_text()
        if args.output:
            args.output.write_text(sdl)
        else:
            sys.stdout.write(sdl)
    return 0
