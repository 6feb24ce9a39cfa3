-- The context view changes in two ways: entries appended at its end, and
-- rewrites (a summary replacing a span, pruned tool outputs, a pin).
-- context_version counts both; context_rewrites counts the rewrites alone, so a
-- process whose copy of the view missed only appends reads just the entries
-- after the last one it holds instead of the whole view.
ALTER TABLE sessions ADD COLUMN context_rewrites BIGINT NOT NULL DEFAULT 0;
