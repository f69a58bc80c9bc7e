-- Allocated size of the database files by type (ROWS, LOG, FILESTREAM...), in bytes.
SELECT
    mf.type_desc,
    SUM(CAST(mf.size AS bigint)) * 8192 AS size_bytes
FROM sys.master_files AS mf
WHERE mf.database_id = DB_ID(%(database)s)
GROUP BY mf.type_desc;
