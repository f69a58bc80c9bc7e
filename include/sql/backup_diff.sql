-- Differential backup on top of the last full.
DECLARE @db sysname = %(database)s;
DECLARE @path nvarchar(4000) = %(path)s;
DECLARE @name nvarchar(128) = %(backup_name)s;
BACKUP DATABASE @db TO DISK = @path
WITH DIFFERENTIAL, INIT, FORMAT, CHECKSUM, {{ COMPRESSION }}, STATS = 5, MAXTRANSFERSIZE = 4194304, NAME = @name;
