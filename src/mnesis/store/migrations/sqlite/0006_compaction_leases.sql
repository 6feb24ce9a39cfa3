-- One compaction pass per session across processes: a lease with an expiry, so a
-- process killed mid-pass does not block the session forever.
CREATE TABLE compaction_leases (
    session_id      TEXT PRIMARY KEY,
    holder          TEXT NOT NULL,
    expires_at      REAL NOT NULL
) WITHOUT ROWID;
