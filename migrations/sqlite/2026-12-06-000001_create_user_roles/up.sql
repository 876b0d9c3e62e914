-- The embedded default's user roles; same columns as migrations/mysql.
CREATE TABLE user_roles (
  user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role TEXT NOT NULL,
  granted_at BIGINT NOT NULL,
  PRIMARY KEY (user_id, role)
);
CREATE INDEX ix_user_roles_role ON user_roles (role);
