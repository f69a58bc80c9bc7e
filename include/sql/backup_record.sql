-- The msdb record of the backup just written to @path: a backup counts only once msdb confirms it.
-- Same columns as backup_history.sql (UTC times from each row's time_zone, see there).
DECLARE @db sysname = %(database)s;
DECLARE @path nvarchar(260) = %(path)s;
DECLARE @offset_now int = DATEDIFF(minute, GETDATE(), GETUTCDATE());
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
    bs.first_recovery_fork_guid,
    bs.last_recovery_fork_guid,
    bs.fork_point_lsn,
    bs.begins_log_chain,
    bs.backup_size,
    bs.compressed_backup_size,
    bs.has_backup_checksums,
    bs.is_damaged,
    bs.time_zone,
    CASE WHEN bs.time_zone BETWEEN -48 AND 48
         THEN DATEADD(minute, -15 * bs.time_zone, bs.backup_start_date)
         ELSE DATEADD(minute, @offset_now, bs.backup_start_date) END AS backup_start_utc,
    CASE WHEN bs.time_zone BETWEEN -48 AND 48
         THEN DATEADD(minute, -15 * bs.time_zone, bs.backup_finish_date)
         ELSE DATEADD(minute, @offset_now, bs.backup_finish_date) END AS backup_finish_utc,
    bs.user_name,
    ms.media_family_count AS family_count,
    bmf.physical_device_name
FROM msdb.dbo.backupset AS bs
JOIN msdb.dbo.backupmediaset AS ms ON ms.media_set_id = bs.media_set_id
JOIN msdb.dbo.backupmediafamily AS bmf ON bmf.media_set_id = bs.media_set_id
WHERE bs.database_name = @db
  AND bmf.physical_device_name = @path
ORDER BY bs.backup_set_id DESC;
