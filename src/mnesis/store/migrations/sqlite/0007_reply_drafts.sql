-- A compaction lease names its holder's process (host, pid, start time) and is
-- renewed by a heartbeat, so a lease whose holder died is taken over at once.
ALTER TABLE compaction_leases ADD COLUMN host TEXT NOT NULL DEFAULT '';
ALTER TABLE compaction_leases ADD COLUMN pid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE compaction_leases ADD COLUMN started TEXT NOT NULL DEFAULT '';
ALTER TABLE compaction_leases ADD COLUMN heartbeat_at REAL NOT NULL DEFAULT 0;

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
    created_at      REAL NOT NULL,
    heartbeat_at    REAL NOT NULL
) WITHOUT ROWID;

CREATE INDEX reply_drafts_session ON reply_drafts (session_id);
