-- The text of a reply while it streams, saved now and then, so a process killed
-- mid-stream does not lose what the user already saw: the next load stores it as
-- a failed ("interrupted") message. A finished reply removes its draft.
CREATE TABLE reply_drafts (
    message_id      TEXT PRIMARY KEY,
    session_id      TEXT NOT NULL REFERENCES sessions(id),
    text            TEXT NOT NULL,
    model           TEXT,
    host            TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    started         TEXT NOT NULL,
    created_at      DOUBLE PRECISION NOT NULL,
    heartbeat_at    DOUBLE PRECISION NOT NULL
);

CREATE INDEX reply_drafts_session ON reply_drafts (session_id);
