"""Database: engine, models, migrations and the start-up schema check."""

from mspbill.db.engine import Database, create_db_engine

__all__ = ["Database", "create_db_engine"]
