-- When a document's run failed: the stage it failed in and the failure's
-- code (DocumentFailed.stage and .code; FailureCode::as_str), so the API
-- can say where and why without clients parsing `reason`. NULL otherwise.
ALTER TABLE documents ADD COLUMN IF NOT EXISTS failed_stage text;
ALTER TABLE documents ADD COLUMN IF NOT EXISTS failure_code text;
