-- The original's `user` table, fixed: a unique username, a password hash instead of the
-- plaintext password, and timestamps. Column types are chosen so that one diesel schema
-- (src/model/schema.rs) serves MySQL and SQLite alike: signed BIGINT ids, TIMESTAMP columns.
CREATE TABLE users (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  username VARCHAR(30) NOT NULL COMMENT '用户名 username',
  password_hash VARCHAR(255) NOT NULL COMMENT '密码哈希 password hash (argon2id PHC string)',
  gender SMALLINT NOT NULL DEFAULT 0 COMMENT '性别 gender: 1 男 male, 2 女 female, 0 未知 unknown',
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  UNIQUE KEY uk_users_username (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='用户表 users';
