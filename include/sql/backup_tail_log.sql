-- Tail-log backup: the last link. NORECOVERY leaves the source RESTORING, so no write can follow it.
DECLARE @db sysname = %(database)s;
DECLARE @path nvarchar(4000) = %(path)s;
DECLARE @name nvarchar(128) = %(backup_name)s;
BACKUP LOG @db TO DISK = @path
WITH NORECOVERY, INIT, FORMAT, CHECKSUM, {{ COMPRESSION }}, STATS = 5, MAXTRANSFERSIZE = 4194304, NAME = @name;
