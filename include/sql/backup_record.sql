-- The msdb record of the backup just written to @path: a backup counts only once msdb confirms it.
SELECT TOP (1)
    bs.backup_set_id,
    bs.database_name,
    bs.type,
    bs.is_copy_only,
    bs.first_lsn,
    bs.last_lsn,
    bs.checkpoint_lsn,
    bs.database_backup_lsn,
    bs.differential_base_lsn,
    bs.differential_base_guid,
    bs.backup_set_uuid,
    bs.database_guid,
    bs.last_recovery_fork_guid,
    bs.begins_log_chain,
    bs.backup_size,
    bs.compressed_backup_size,
    bs.has_backup_checksums,
    bs.is_damaged,
    bs.backup_start_date,
    bs.backup_finish_date,
    bmf.physical_device_name
FROM msdb.dbo.backupset AS bs
JOIN msdb.dbo.backupmediafamily AS bmf ON bmf.media_set_id = bs.media_set_id
WHERE bs.database_name = %(database)s
  AND bmf.physical_device_name = %(path)s
ORDER BY bs.backup_set_id DESC;
