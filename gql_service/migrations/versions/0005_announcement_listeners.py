"""announcements only while someone listens

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

A transaction that notifies takes PostgreSQL's lock that puts notifying commits in order (one
lock for the whole cluster, held through the commit), whether or not anything listens. Each
worker's LISTEN connection now registers in ``announcement_listener``, and the locking UPDATE
calls ``announce_change``, which sends the NOTIFY only while a listener is registered. The
function is VOLATILE, so it looks with a snapshot taken after the UPDATE locked the row (at
READ COMMITTED); with the subscriber's wait for that row lock (listener.py), no change
committed after a subscription starts goes unannounced. SQLite has the table (the models
declare it) but no NOTIFY.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ANNOUNCE_CHANGE = """
CREATE OR REPLACE FUNCTION announce_change(channel text, payload text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF EXISTS (SELECT FROM announcement_listener) THEN
        PERFORM pg_notify(channel, payload);
        RETURN true;
    END IF;
    RETURN false;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "announcement_listener",
        sa.Column("pid", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pid"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(ANNOUNCE_CHANGE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION announce_change(text, text)")
    op.drop_table("announcement_listener")
