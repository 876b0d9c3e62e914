-- The latest login of each user (single sign-on) when Redis is off, where every process of the
-- deployment (http, grpc, socket) sees it. A row ends when it is replaced (a newer login),
-- deleted (logout, reuse of a spent refresh token) or past expires_at.
CREATE TABLE logins (
  user_id BIGINT NOT NULL PRIMARY KEY COMMENT '用户 user id',
  sid VARCHAR(64) NOT NULL COMMENT '登录 login (session) id',
  refresh_jti VARCHAR(64) NOT NULL COMMENT '下一个可用的刷新令牌 the refresh token that may be used next',
  expires_at BIGINT NOT NULL COMMENT '过期时间 expiry, unix milliseconds',
  KEY ix_logins_expires_at (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='登录记录 login records';
