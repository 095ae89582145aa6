"""month-end batch: runs, charge approvals, retry and rate settings

Revision ID: 689c6de99d30
Revises: 9a4eba7575c2
Create Date: 2026-11-21
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mspbill.db.types

revision: str = '689c6de99d30'
down_revision: str | None = '9a4eba7575c2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('batch_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lock_name', sa.String(length=20), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('mode', sa.Enum('test', 'live', 'sandbox', name='processor_mode', native_enum=False, create_constraint=True, length=20), nullable=True),
    sa.Column('status', sa.Enum('running', 'finished', 'cancelled', 'stopped', 'interrupted', name='batch_run_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', mspbill.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', mspbill.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', mspbill.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('backup_path', sa.String(length=1000), nullable=False),
    sa.Column('generated', sa.Integer(), nullable=False),
    sa.Column('issued', sa.Integer(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=True),
    sa.Column('message', sa.String(length=1000), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batch_runs'))
    )
    with op.batch_alter_table('batch_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batch_runs_period'), ['period'], unique=False)
        batch_op.create_index('uq_batch_runs_running', ['lock_name'], unique=True, sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"))

    op.create_table('charge_approvals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=True),
    sa.Column('agreement_id', sa.Integer(), nullable=True),
    sa.Column('period_start', sa.Date(), nullable=True),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('created_at', mspbill.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_charge_approvals_amount_positive')),
    sa.CheckConstraint('invoice_id IS NOT NULL OR (agreement_id IS NOT NULL AND period_start IS NOT NULL)', name=op.f('ck_charge_approvals_names_what')),
    sa.ForeignKeyConstraint(['agreement_id'], ['agreements.id'], name=op.f('fk_charge_approvals_agreement_id_agreements'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_charge_approvals_client_id_clients'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_charge_approvals_invoice_id_invoices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_charge_approvals')),
    sa.UniqueConstraint('agreement_id', 'period_start', name='uq_charge_approvals_agreement_period'),
    sa.UniqueConstraint('invoice_id', name=op.f('uq_charge_approvals_invoice_id'))
    )
    with op.batch_alter_table('charge_approvals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_charge_approvals_client_id'), ['client_id'], unique=False)

    with op.batch_alter_table('charge_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch_run_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_charge_attempts_batch_run_id'), ['batch_run_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_charge_attempts_batch_run_id_batch_runs'), 'batch_runs', ['batch_run_id'], ['id'], ondelete='RESTRICT')

    with op.batch_alter_table('payment_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retry_days', sa.String(length=100), nullable=False, server_default='3,5,7'))
        batch_op.add_column(sa.Column('rate_limit_test', sa.Integer(), nullable=False, server_default='25'))
        batch_op.add_column(sa.Column('rate_limit_live', sa.Integer(), nullable=False, server_default='100'))
        batch_op.add_column(sa.Column('rate_margin_percent', sa.Integer(), nullable=False, server_default='10'))



def downgrade() -> None:
    with op.batch_alter_table('payment_settings', schema=None) as batch_op:
        batch_op.drop_column('rate_margin_percent')
        batch_op.drop_column('rate_limit_live')
        batch_op.drop_column('rate_limit_test')
        batch_op.drop_column('retry_days')

    with op.batch_alter_table('charge_attempts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_charge_attempts_batch_run_id_batch_runs'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_charge_attempts_batch_run_id'))
        batch_op.drop_column('batch_run_id')

    with op.batch_alter_table('charge_approvals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_charge_approvals_client_id'))

    op.drop_table('charge_approvals')
    with op.batch_alter_table('batch_runs', schema=None) as batch_op:
        batch_op.drop_index('uq_batch_runs_running', sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"))
        batch_op.drop_index(batch_op.f('ix_batch_runs_period'))

    op.drop_table('batch_runs')
