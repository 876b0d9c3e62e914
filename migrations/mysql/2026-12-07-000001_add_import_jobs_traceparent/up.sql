-- The trace of the request that started an import (W3C traceparent, docs/tracing.md): the socket
-- app's progress pushes link to it. Absent when tracing was off.
ALTER TABLE import_jobs
  ADD COLUMN traceparent VARCHAR(55) NULL COMMENT '追踪 W3C traceparent of the starting request' AFTER updated_at;
