-- Same column as migrations/mysql: the starting request's W3C traceparent, when traced.
ALTER TABLE import_jobs ADD COLUMN traceparent TEXT NULL;
