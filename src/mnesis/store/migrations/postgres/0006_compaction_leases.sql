-- SQLite's 0006 added a table of compaction leases. PostgreSQL needs none: its
-- compaction lock is an advisory lock that dies with the connection holding it.
-- This step keeps both backends' schema versions in step.
SELECT 1;
