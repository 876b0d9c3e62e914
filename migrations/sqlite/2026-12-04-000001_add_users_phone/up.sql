-- Same column as migrations/mysql: a user's verified mobile number, unique when present.
ALTER TABLE users ADD COLUMN phone TEXT NULL;
CREATE UNIQUE INDEX uk_users_phone ON users (phone);
