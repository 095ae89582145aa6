"""money and quantities are 64-bit on PostgreSQL too

Every money column (`*_cents`) and scaled quantity (`*_e4`) was INTEGER: 64-bit on SQLite, but 32-bit
on PostgreSQL, where an invoice over 21,474,836.47 (or 2,147,483,647 in a currency without decimals,
such as VND or JPY) or a quantity over 214,748.3648 failed with "integer out of range".  On PostgreSQL
they become BIGINT (models: mspbill.db.types.Int64).  SQLite's INTEGER already holds 64 bits, so there
this migration changes nothing at all (no table is rebuilt).

One ALTER TABLE per table, so PostgreSQL rewrites each table once rather than once per column; its
CHECK constraints and indexes are kept (and re-checked).  The downgrade narrows them back and fails,
changing nothing, when a stored value no longer fits 32 bits.

Revision ID: ce30ff42b65b
Revises: abe1149c0b8d
Create Date: 2026-11-22
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = 'ce30ff42b65b'
down_revision: str | None = 'abe1149c0b8d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Fixed here (not read from the models) so this migration means the same thing forever.
WIDENED: dict[str, tuple[str, ...]] = {
    'clients': ('autopay_cap_cents',),
    'agreement_lines': ('quantity_e4', 'unit_price_cents'),
    'instalment_plans': ('total_cents',),
    'invoices': ('subtotal_cents', 'tax_cents', 'total_cents', 'credit_applied_cents', 'paid_cents',
                 'credited_cents'),
    'invoice_lines': ('quantity_e4', 'unit_price_cents', 'amount_cents', 'terms_quantity_e4',
                      'terms_unit_price_cents'),
    'payments': ('amount_cents', 'applied_cents'),
    'client_credits': ('amount_cents',),
    'charge_attempts': ('amount_cents',),
    'charge_approvals': ('amount_cents',),
    'refunds': ('amount_cents',),
    'collection_settings': ('late_fee_flat_cents', 'late_fee_min_balance_cents'),
    'invoice_reminders': ('balance_cents',),
    'late_fees': ('basis_cents', 'amount_cents'),
}


def _retype(sql_type: str) -> None:
    if op.get_context().dialect.name != 'postgresql':  # works offline (--sql) too
        return  # SQLite: INTEGER is 64-bit already
    for table, columns in WIDENED.items():
        clauses = ', '.join(f'ALTER COLUMN {column} TYPE {sql_type}' for column in columns)
        op.execute(f'ALTER TABLE {table} {clauses}')


def upgrade() -> None:
    _retype('BIGINT')


def downgrade() -> None:
    _retype('INTEGER')
