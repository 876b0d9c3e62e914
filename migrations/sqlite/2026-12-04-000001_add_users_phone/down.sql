DROP INDEX uk_users_phone;
ALTER TABLE users DROP COLUMN phone;
