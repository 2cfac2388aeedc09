"""Persistence: SQLModel tables, the engine, migrations and typed queries. Repositories never commit."""
