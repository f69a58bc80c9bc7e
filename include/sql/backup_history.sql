-- Backup history of one database since a point in time, oldest first: one row per backup set.
-- Ground truth for what was backed up: finds backups a crashed task never recorded, and other jobs'
-- backups (which break our chain, or are adopted into it).
-- Time: msdb keeps backup_start_date in the server's local time, and a datetime literal is read through
-- the login's DATEFORMAT (a British login reads 2026-11-24 as day 11 of month 24: error 242). So the
-- bound travels as ISO 8601 text converted with style 126, which no language setting changes, and is
-- moved to local time; each row's time_zone (15-minute steps from UTC when it ran) gives its UTC times.
-- Stripes and mirrors: backupmediafamily has one row per file and mirror; the set is listed once, with
-- its first file and the number of files it is striped over.
DECLARE @db sysname = %(database)s;
DECLARE @since_utc datetime2(3) = CONVERT(datetime2(3), %(since_utc)s, 126);
DECLARE @since_local datetime2(3) = DATEADD(minute, DATEDIFF(minute, GETUTCDATE(), GETDATE()), @since_utc);
DECLARE @offset_now int = DATEDIFF(minute, GETDATE(), GETUTCDATE());
SELECT
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
JOIN msdb.dbo.backupmediafamily AS bmf
    ON bmf.media_set_id = bs.media_set_id AND bmf.family_sequence_number = 1 AND bmf.mirror = 0
WHERE bs.database_name = @db
  AND bs.backup_start_date >= @since_local
ORDER BY bs.backup_set_id;
