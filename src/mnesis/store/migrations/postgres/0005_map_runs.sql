-- Operator runs: each item's status survives a crash, so a rerun does only what is left.
CREATE TABLE map_runs (
    id              TEXT PRIMARY KEY,
    operator        TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    created_at      DOUBLE PRECISION NOT NULL
);

CREATE TABLE map_items (
    run_id          TEXT NOT NULL REFERENCES map_runs(id),
    idx             INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    result_json     TEXT,
    updated_at      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, idx)
);
