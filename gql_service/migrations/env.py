"""Alembic environment: runs on a connection handed in by ``upgrade_to_head``."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import gql_service.models  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations through `python -m gql_service migrate`.")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
