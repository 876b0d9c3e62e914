-- The embedded default's import jobs; same columns as migrations/mysql.
CREATE TABLE import_jobs (
  id TEXT PRIMARY KEY NOT NULL,
  user_id BIGINT NOT NULL,
  status TEXT NOT NULL,
  rows_read BIGINT NOT NULL DEFAULT 0,
  rows_written BIGINT NOT NULL DEFAULT 0,
  result TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX ix_import_jobs_updated_at ON import_jobs (updated_at);
CREATE INDEX ix_import_jobs_user_id ON import_jobs (user_id);
