-- Full-text search over every stored part, kept in the same transaction as the append.
-- The index holds no copy of the text, only a tsvector. key = part id * 2 (the part's
-- text or tool call) or part id * 2 + 1 (a tool call's result), as in SQLite; a long
-- body is split into overlapping chunks (tsvector positions stop at 16383), so
-- (key, chunk) is the primary key. The application writes the vectors itself from
-- normalised words (lower case, no diacritics, split on anything not a letter or digit,
-- like SQLite's unicode61 tokenizer), so this backfill only approximates that.
CREATE TABLE search_index (
    key         BIGINT NOT NULL,
    chunk       INTEGER NOT NULL DEFAULT 0,
    session_id  TEXT NOT NULL,
    tsv         TSVECTOR NOT NULL,
    PRIMARY KEY (key, chunk)
);
CREATE INDEX search_index_tsv ON search_index USING GIN (tsv);
CREATE INDEX search_index_session ON search_index(session_id, key);

INSERT INTO search_index (key, chunk, session_id, tsv)
SELECT id * 2, 0, session_id, to_tsvector('simple', regexp_replace(lower(left(
       CASE type
           WHEN 'text' THEN data::jsonb ->> 'text'
           WHEN 'tool' THEN (data::jsonb ->> 'tool_name') || ' ' || ((data::jsonb) -> 'input')::text
           ELSE (data::jsonb ->> 'path') || ' ' || (data::jsonb ->> 'content_id') || ' '
                || (data::jsonb ->> 'exploration_summary')
       END, 200000)), '[^[:alnum:]]+', ' ', 'g'))
FROM parts;

INSERT INTO search_index (key, chunk, session_id, tsv)
SELECT id * 2 + 1, 0, session_id,
       to_tsvector('simple', regexp_replace(lower(left(COALESCE(tool_output, tool_error), 200000)),
                                            '[^[:alnum:]]+', ' ', 'g'))
FROM parts WHERE tool_output IS NOT NULL OR tool_error IS NOT NULL;

-- Finding a message or summary in the context view without scanning the session's view.
CREATE INDEX context_items_ref ON context_items(session_id, ref_id);
