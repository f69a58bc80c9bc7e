-- Rollback of a cutover: bring a source left RESTORING by the tail-log backup back online.
DECLARE @db sysname = %(database)s;
RESTORE DATABASE @db WITH RECOVERY;
