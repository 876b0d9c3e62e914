-- Roles granted to users (issue 22: roles, not names). A row per (user, role); `admin` is the one
-- role the routes check today. Granted and revoked by `go_example users grant-admin|revoke-admin`;
-- a change ends the user's logins, so an access token's roles are never older than its login.
CREATE TABLE user_roles (
  user_id BIGINT NOT NULL COMMENT '用户 user id',
  role VARCHAR(32) NOT NULL COMMENT '角色 role: admin',
  granted_at BIGINT NOT NULL COMMENT '授予时间 granted at, unix milliseconds',
  PRIMARY KEY (user_id, role),
  KEY ix_user_roles_role (role),
  CONSTRAINT fk_user_roles_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='用户角色 user roles';
