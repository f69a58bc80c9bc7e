-- Consistency check: a clean database prints nothing; corruption raises severity-16 errors.
DECLARE @db sysname = %(database)s;
DBCC CHECKDB (@db) WITH NO_INFOMSGS, ALL_ERRORMSGS;
