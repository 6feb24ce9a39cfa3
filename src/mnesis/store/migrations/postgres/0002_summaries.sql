-- Compaction: the summary DAG, tombstones on tool outputs, pinned messages.
ALTER TABLE parts ADD COLUMN pruned_at DOUBLE PRECISION;

CREATE TABLE summaries (
    id              TEXT PRIMARY KEY,
    session_id      TEXT NOT NULL REFERENCES sessions(id),
    kind            TEXT NOT NULL CHECK (kind IN ('leaf', 'condensed')),
    depth           INTEGER NOT NULL CHECK (depth >= 0),
    level_used      INTEGER NOT NULL CHECK (level_used BETWEEN 1 AND 3),
    text            TEXT NOT NULL,
    token_count     BIGINT NOT NULL,
    first_seq       BIGINT NOT NULL,
    last_seq        BIGINT NOT NULL,
    message_count   BIGINT NOT NULL,
    model           TEXT,
    created_at      DOUBLE PRECISION NOT NULL
);
CREATE INDEX summaries_session ON summaries(session_id);

-- What each node covers, in order: messages (leaf) or summaries (condensed).
CREATE TABLE summary_sources (
    summary_id      TEXT NOT NULL REFERENCES summaries(id),
    ord             INTEGER NOT NULL,
    source_kind     TEXT NOT NULL CHECK (source_kind IN ('message', 'summary')),
    source_id       TEXT NOT NULL,
    PRIMARY KEY (summary_id, ord)
);
CREATE UNIQUE INDEX summary_sources_source ON summary_sources(source_id);

CREATE TABLE pins (
    session_id      TEXT NOT NULL REFERENCES sessions(id),
    message_id      TEXT NOT NULL REFERENCES messages(id),
    pinned_at       DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (session_id, message_id)
);
