-- The embedded default's login records; same columns as migrations/mysql.
CREATE TABLE logins (
  user_id BIGINT PRIMARY KEY NOT NULL,
  sid TEXT NOT NULL,
  refresh_jti TEXT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX ix_logins_expires_at ON logins (expires_at);
