-- Full-text search over every stored part, kept in the same transaction as the append.
-- Contentless: the index holds no copy of the text. rowid = part id * 2 (the part's
-- text or tool call) or part id * 2 + 1 (a tool call's result); sid scopes a session.
CREATE VIRTUAL TABLE search_index USING fts5(
    sid, body, content = '', tokenize = 'unicode61 remove_diacritics 2'
);

INSERT INTO search_index (rowid, sid, body)
SELECT id * 2, session_id,
       CASE type
           WHEN 'text' THEN json_extract(data, '$.text')
           WHEN 'tool' THEN json_extract(data, '$.tool_name') || ' ' || json(json_extract(data, '$.input'))
           ELSE json_extract(data, '$.path') || ' ' || json_extract(data, '$.content_id') || ' '
                || json_extract(data, '$.exploration_summary')
       END
FROM parts;

INSERT INTO search_index (rowid, sid, body)
SELECT id * 2 + 1, session_id, COALESCE(tool_output, tool_error)
FROM parts WHERE tool_output IS NOT NULL OR tool_error IS NOT NULL;

-- Finding a message or summary in the context view without scanning the session's view.
CREATE INDEX context_items_ref ON context_items(session_id, ref_id);
