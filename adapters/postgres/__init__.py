"""PostgreSQL through asyncpg: the target database being migrated."""
