ALTER TABLE users DROP INDEX uk_users_phone, DROP COLUMN phone;
