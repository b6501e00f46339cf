"""The state store: SQLAlchemy 2 Core (async) over SQLite (embedded default) or PostgreSQL."""
