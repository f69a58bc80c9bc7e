-- Transparent data encryption: a row means the database has an encryption key (RDS cannot restore it
-- without the certificate).
SELECT ek.encryption_state
FROM sys.dm_database_encryption_keys AS ek
WHERE ek.database_id = DB_ID(%(database)s);
