-- Every word the full-text index holds, so grep can turn its last word's prefix
-- into the few exact words that begin with it: FTS5 reads a prefix's whole
-- doclist before it stops at the first page, an exact word streams.
-- New words are added in the transaction that indexes them; the words already
-- indexed come from the index itself (as FTS5 folded them).
CREATE TABLE search_words (word TEXT PRIMARY KEY) WITHOUT ROWID;

-- Counts erasures that dropped words, so a process that remembers which words
-- are stored (to skip inserting them again) knows when to forget.
CREATE TABLE search_words_epoch (n INTEGER NOT NULL);
INSERT INTO search_words_epoch (n) VALUES (0);

CREATE VIRTUAL TABLE temp.search_index_terms USING fts5vocab(main, search_index, row);
INSERT OR IGNORE INTO search_words (word) SELECT term FROM temp.search_index_terms;
DROP TABLE temp.search_index_terms;
