-- What the server restored into one database, from its own msdb (RESTORE writes restorehistory and the
-- restored backup's backupset row on the restoring server): the last LSN reached and the database_guid
-- of the backups (the source's), with the database's family_guid (RESTORE gives a restored database a
-- new database_guid but keeps the family). The proof that the target holds the source's log up to the
-- tail-log backup's last_lsn, without reading any data.
DECLARE @db sysname = %(database)s;
SELECT
    MAX(bs.last_lsn) AS restored_through_lsn,
    COUNT(*) AS restores,
    MAX(CAST(bs.database_guid AS nvarchar(36))) AS backup_database_guid,
    (SELECT CAST(rs.family_guid AS nvarchar(36))
       FROM sys.database_recovery_status AS rs WHERE rs.database_id = DB_ID(@db)) AS family_guid
FROM msdb.dbo.restorehistory AS rh
JOIN msdb.dbo.backupset AS bs ON bs.backup_set_id = rh.backup_set_id
WHERE rh.destination_database_name = @db
  AND rh.restore_history_id >= (  -- this restore sequence: from the latest full restore on
      SELECT MAX(f.restore_history_id) FROM msdb.dbo.restorehistory AS f
      WHERE f.destination_database_name = @db AND f.restore_type = 'D');
