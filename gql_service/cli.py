"""Command line: serve, migrate, seed-demo, export-schema and the API key commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gql_service.principal import SCOPES
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


async def _api_keys(settings: Settings, args: argparse.Namespace) -> int:
    from gql_service.api_keys import (
        ApiKeyError,
        create_api_key,
        describe,
        list_api_keys,
        revoke_api_key,
    )
    from gql_service.database import create_engine
    from gql_service.unit_of_work import UnitOfWork

    engine = create_engine(settings)
    uow = UnitOfWork(engine, actor=settings.acting_user)
    try:
        if args.command == "create-api-key":
            issued = await create_api_key(uow, name=args.name, scopes=args.scopes)
            print(
                f"created API key {issued.record.key_id} ({issued.record.name}: "
                f"{issued.record.scopes}); it is shown once, store it now:",
                file=sys.stderr,
            )
            print(issued.token)
        elif args.command == "list-api-keys":
            for record in await list_api_keys(uow):
                print(describe(record))
        else:
            record = await revoke_api_key(uow, key=args.key)
            print(f"revoked: {describe(record)}")
    except ApiKeyError as exc:
        print(f"gql_service: {exc}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    return 0


def export_schema_text() -> str:
    from gql_service.graphql.schema import build_schema

    return build_schema().as_str() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gql_service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API (GraphiQL at /graphql)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: WORKERS, 1)"
    )
    commands.add_parser("migrate", help="bring the database schema up to date")
    seed = commands.add_parser("seed-demo", help="load the demo data set")
    seed.add_argument(
        "--if-empty", action="store_true", help="only when there are no opportunities yet"
    )
    export = commands.add_parser("export-schema", help="print or write the GraphQL SDL")
    export.add_argument("--output", type=Path, help="file to write (default: stdout)")
    create_key = commands.add_parser(
        "create-api-key", help="issue an API key and print it, once, on stdout"
    )
    create_key.add_argument("--name", required=True, help="unique; recorded as createdBy")
    create_key.add_argument("--scopes", nargs="+", required=True, choices=SCOPES)
    commands.add_parser("list-api-keys", help="list API keys (secrets are never stored)")
    revoke_key = commands.add_parser("revoke-api-key", help="revoke an API key")
    revoke_key.add_argument("key", help="the key's name or key id (gqs_...)")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    configure_logging(settings)
    if args.command == "serve":
        if settings.metrics:
            from gql_service.metrics_dir import prepare_multiprocess_dir

            # Before prometheus_client is imported: every worker writes its values there.
            prepare_multiprocess_dir(os.environ)
        import uvicorn

        from gql_service.authentication import check_authentication_settings
        from gql_service.jwt_tokens import AuthConfigurationError

        try:
            check_authentication_settings(settings)
        except AuthConfigurationError as exc:
            print(f"gql_service: cannot serve: {exc}", file=sys.stderr)
            return 2

        workers = args.workers or settings.workers
        # Each worker sizes its pool from WORKERS (settings.pool_size_per_worker).
        os.environ["WORKERS"] = str(workers)
        uvicorn.run(
            "gql_service.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=workers,
            # Logging, limits and headers travel in the config to every worker process.
            **uvicorn_options(settings),
        )
    elif args.command == "migrate":
        asyncio.run(_migrate(settings))
        print(f"database at head: {settings.database_url}")
    elif args.command == "seed-demo":
        print(asyncio.run(_seed(settings, only_if_empty=args.if_empty)))
    elif args.command in {"create-api-key", "list-api-keys", "revoke-api-key"}:
        return asyncio.run(_api_keys(settings, args))
    elif args.command == "export-schema":
        sdl = export_schema_text()
        if args.output:
            args.output.write_text(sdl)
        else:
            sys.stdout.write(sdl)
    return 0
