-- Backup-set header read from the file itself (when msdb history was purged or to check a file).
DECLARE @path nvarchar(4000) = %(path)s;
RESTORE HEADERONLY FROM DISK = @path;
