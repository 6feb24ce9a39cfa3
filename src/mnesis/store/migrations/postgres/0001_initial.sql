-- The append-only log: sessions, messages, parts, the context view, turn snapshots.
-- Costs must be numbers: PostgreSQL stores NaN, so the CHECKs refuse it (SQLite does too).
CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY,
    parent_id           TEXT REFERENCES sessions(id),
    agent               TEXT NOT NULL,
    model               TEXT NOT NULL,
    system_prompt       TEXT NOT NULL,
    config_json         TEXT NOT NULL,
    created_at          DOUBLE PRECISION NOT NULL,
    updated_at          DOUBLE PRECISION NOT NULL,
    input_tokens        BIGINT NOT NULL DEFAULT 0,
    output_tokens       BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens   BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens  BIGINT NOT NULL DEFAULT 0,
    total_tokens        BIGINT NOT NULL DEFAULT 0,
    cost                DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (cost <> 'NaN'::float8),
    turn_count          INTEGER NOT NULL DEFAULT 0,
    context_version     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_parent ON sessions(parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE messages (
    id                  TEXT PRIMARY KEY,
    session_id          TEXT NOT NULL REFERENCES sessions(id),
    seq                 BIGINT NOT NULL,
    role                TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    created_at          DOUBLE PRECISION NOT NULL,
    model               TEXT,
    status              TEXT NOT NULL CHECK (status IN ('complete', 'failed', 'streaming')),
    finish_reason       TEXT,
    error               TEXT,
    input_tokens        BIGINT NOT NULL DEFAULT 0,
    output_tokens       BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens   BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens  BIGINT NOT NULL DEFAULT 0,
    total_tokens        BIGINT NOT NULL DEFAULT 0,
    cost                DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (cost <> 'NaN'::float8),
    token_count         BIGINT NOT NULL,
    UNIQUE (session_id, seq)
);

CREATE TABLE parts (
    id                  BIGSERIAL PRIMARY KEY,
    message_id          TEXT NOT NULL REFERENCES messages(id),
    session_id          TEXT NOT NULL,
    idx                 INTEGER NOT NULL,
    type                TEXT NOT NULL,
    data                TEXT NOT NULL,
    token_count         BIGINT NOT NULL,
    tool_call_id        TEXT,
    tool_status         TEXT,
    tool_output         TEXT,
    tool_error          TEXT,
    result_token_count  BIGINT NOT NULL DEFAULT 0,
    completed_at        DOUBLE PRECISION,
    UNIQUE (message_id, idx)
);
CREATE INDEX parts_tool_call ON parts(session_id, tool_call_id) WHERE tool_call_id IS NOT NULL;

CREATE TABLE context_items (
    session_id          TEXT NOT NULL REFERENCES sessions(id),
    position            BIGINT NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('message', 'summary')),
    ref_id              TEXT NOT NULL,
    PRIMARY KEY (session_id, position)
);

CREATE TABLE turns (
    session_id          TEXT NOT NULL REFERENCES sessions(id),
    turn_index          INTEGER NOT NULL,
    snapshot_json       TEXT NOT NULL,
    created_at          DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (session_id, turn_index)
);
