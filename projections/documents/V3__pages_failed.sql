-- Pages of the current run's text that could not be read (a partial
-- extraction: the document is searchable with what was read). From
-- TextExtracted.pages_failed; 0 for a whole extraction.
ALTER TABLE documents ADD COLUMN IF NOT EXISTS pages_failed integer NOT NULL DEFAULT 0;
