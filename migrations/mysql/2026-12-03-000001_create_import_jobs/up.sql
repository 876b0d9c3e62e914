-- Excel imports (docs/excel.md): one row per import, its progress while it runs and its result
-- after. Every process of the deployment sees it: GET /excel/import/{id} answers from any HTTP
-- instance, and the socket app pushes the progress to the user's connections. Times are unix
-- milliseconds, like logins.expires_at.
CREATE TABLE import_jobs (
  id VARCHAR(32) NOT NULL PRIMARY KEY COMMENT '任务 job id (128 random bits, hex)',
  user_id BIGINT NOT NULL COMMENT '发起人 the user who started it',
  status VARCHAR(16) NOT NULL COMMENT '状态 running | done | failed',
  rows_read BIGINT NOT NULL DEFAULT 0 COMMENT '已读行数 data rows read',
  rows_written BIGINT NOT NULL DEFAULT 0 COMMENT '已写行数 rows written (inserted, updated or skipped)',
  result TEXT NULL COMMENT '结果 the report (done) or the error envelope (failed), JSON',
  created_at BIGINT NOT NULL COMMENT '开始时间 started, unix milliseconds',
  updated_at BIGINT NOT NULL COMMENT '更新时间 last progress, unix milliseconds',
  KEY ix_import_jobs_updated_at (updated_at),
  KEY ix_import_jobs_user_id (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='导入任务 import jobs';
