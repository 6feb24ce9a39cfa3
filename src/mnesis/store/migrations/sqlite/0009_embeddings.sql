-- Meaning-based recall: vectors of stored texts, per embedder (its name keys them, so a
-- model change embeds anew and never compares vectors of two models). item = 'b' || the
-- full-text index key (a part's text or a tool result) or a summary's id; a long text is
-- embedded a chunk at a time. A row means the chunk is done: what has none is the backlog.
-- vector: little-endian float32 bytes (empty: nothing to embed). id is the load order a
-- process's in-memory copy reads on from: AUTOINCREMENT, so the ids of erased rows are
-- never handed out again (a copy that read past them would skip the new rows).
CREATE TABLE embeddings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    embedder    TEXT NOT NULL,
    session_id  TEXT NOT NULL REFERENCES sessions(id),
    item        TEXT NOT NULL,
    chunk       INTEGER NOT NULL,
    message_id  TEXT,
    vector      BLOB NOT NULL
);
CREATE UNIQUE INDEX embeddings_item ON embeddings(embedder, item, chunk);
CREATE INDEX embeddings_load ON embeddings(embedder, session_id, id);
