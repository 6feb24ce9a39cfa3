"""What the SQL backends share: each algorithm once, as statements to run.

An algorithm here is a generator that yields :class:`~mnesis.store.sql.statements.Stmt`
objects and receives their results; it does no I/O. The SQLite backend drives
it on its writer thread, the PostgreSQL backend on an asyncpg connection, each
inside one transaction per public call. SQL is written once, with ``?``
placeholders, in the subset both databases read; a backend's dialect rewrites
what differs (placeholders, row locks, arrays) and supplies what cannot be
shared (full-text indexing and search).
"""
