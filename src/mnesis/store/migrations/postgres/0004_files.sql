-- Large files: one reference row per distinct content (sha256), never the content itself.
CREATE TABLE file_refs (
    content_id          TEXT PRIMARY KEY,
    path                TEXT NOT NULL,
    file_type           TEXT NOT NULL,
    token_count         BIGINT NOT NULL,
    size_bytes          BIGINT NOT NULL,
    exploration_summary TEXT NOT NULL,
    created_at          DOUBLE PRECISION NOT NULL
);
