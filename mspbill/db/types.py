"""Column types used by the models and, by name, by the migrations.

Migrations import these, so their names and arguments stay stable.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, Numeric, String, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.operators import OperatorType
from sqlalchemy.types import TypeEngine


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ExactDecimal(TypeDecorator[Decimal]):
    """A Decimal stored exactly: NUMERIC where the database has it, text on SQLite.

    SQLite's NUMERIC affinity turns 0.1 into a binary float; storing the
    decimal's text keeps quantities and rates exact (house rule 4).
    """

    impl = String(40)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(20, 6))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("floats are refused for exact decimals")
        value = Decimal(value)
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value))


def _to_int(value: Any) -> int | None:
    return None if value is None else int(value)


class Int64(TypeDecorator[int]):
    """A 64-bit integer on every backend, read back as `int`: money in minor units (`*_cents`) and
    quantities scaled by 10,000 (`*_e4`).

    PostgreSQL's INTEGER is 32-bit (2,147,483,647: 21.4 million in a currency with cents, 2.1 billion
    VND) while validation allows lines of 999,999 × 99,999,999 and amounts up to 10**13; BIGINT holds
    them.  SQLite's INTEGER is already 64-bit, so there the column stays exactly INTEGER (no table
    rebuild, same file).

    Why a TypeDecorator rather than BigInteger: PostgreSQL sums a BIGINT as NUMERIC, which psycopg
    returns as Decimal.  Sums, and arithmetic on these columns (`total_cents - paid_cents`), keep this
    type, so what the database adds up comes back as `int` on both backends, as it did with INTEGER.
    """

    impl = BigInteger
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Integer())
        return dialect.type_descriptor(BigInteger())

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        # SQLite hands back int already: no per-value call there.
        return None if dialect.name == "sqlite" else _to_int

    class comparator_factory(TypeDecorator.Comparator[int], BigInteger.Comparator[int]):  # type: ignore[misc]
        """`a - b`, `a * 3`, `a // 2` of these columns stay Int64 (SQLAlchemy would make them plain
        BigInteger, losing the int result above); `a / b` and `a * rate` stay Numeric."""

        def _adapt_expression(self, op: OperatorType,
                              other_comparator: TypeEngine.Comparator[Any]) -> tuple[OperatorType, TypeEngine[Any]]:
            op, result = super()._adapt_expression(op, other_comparator)
            if isinstance(result, Integer):
                return op, self.type
            return op, result


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused; use UTC")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)
