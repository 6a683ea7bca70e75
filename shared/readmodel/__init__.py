"""The read-model store: SQLAlchemy 2 async on PostgreSQL (asyncpg) or SQLite (aiosqlite).

Read models are disposable (invariant 2): the schema lives in `schema.py`, migrations in
`migrations/`, and every projection stores its consumed positions in `projection_positions`
in the same transaction as its rows.
"""
