-- The uploader's own id for a document (e.g. a corpus id), echoed in lists
-- and search hits. From DocumentUploaded.external_id (optional).
ALTER TABLE documents ADD COLUMN IF NOT EXISTS external_id text;
CREATE INDEX IF NOT EXISTS documents_by_owner_external
    ON documents (owner_token, external_id) WHERE external_id IS NOT NULL;
