"""The PostgreSQL backend (`pip install 'bridge[postgres]'`): see store.py."""

from bridge.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
