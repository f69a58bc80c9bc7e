-- Transaction log backup: the next link of the chain.
DECLARE @db sysname = %(database)s;
DECLARE @path nvarchar(4000) = %(path)s;
DECLARE @name nvarchar(128) = %(backup_name)s;
BACKUP LOG @db TO DISK = @path
WITH INIT, FORMAT, CHECKSUM, {{ COMPRESSION }}, STATS = 5, MAXTRANSFERSIZE = 4194304, NAME = @name;
