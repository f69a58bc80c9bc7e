-- One row per database: state, access, recovery model and the LSN of its last log backup
-- (NULL means no log backup is possible yet: SIMPLE, or FULL never fully backed up).
SELECT
    d.name,
    d.database_id,
    d.state_desc,
    d.user_access_desc,
    d.is_read_only,
    d.recovery_model_desc,
    d.compatibility_level,
    d.is_encrypted,
    d.log_reuse_wait_desc,
    rs.last_log_backup_lsn,
    rs.database_guid,
    rs.family_guid
FROM sys.databases AS d
LEFT JOIN sys.database_recovery_status AS rs ON rs.database_id = d.database_id
WHERE d.name = %(database)s;
