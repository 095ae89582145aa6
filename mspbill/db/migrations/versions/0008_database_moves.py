"""database moves: the copy left behind by `mspbill db copy` is marked, and refused when opened

After the office is copied to another database (this computer's file onto the office's server, or a
server's data into a file) and moved there, the database it came from still holds the office as it was at
that moment.  Opened again (`mspbill db use --local`, the start-up dialog's "Use this computer's own
file"), it would bill and charge a second time what was billed and charged after the move.  A row here
says where the office went; mspbill.db.schema.open_database refuses a database with an unreclaimed row.

Revision ID: 5b1e0c7d2a94
Revises: ce30ff42b65b
Create Date: 2026-11-22
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mspbill.db.types

revision: str = '5b1e0c7d2a94'
down_revision: str | None = 'ce30ff42b65b'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('database_moves',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('moved_to', sa.String(length=1000), nullable=False),
    sa.Column('moved_at', mspbill.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('reclaimed_at', mspbill.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reclaimed_by', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_database_moves'))
    )


def downgrade() -> None:
    op.drop_table('database_moves')
