-- One row per chunk of a document's processing run, from DocumentChunked;
-- its vector arrives with ChunksEmbedded. Searchable by full text (tsv) and,
-- through the API's in-memory index, by vector.
-- Chunks of an older run stay until a newer run is indexed, so a document
-- being reprocessed stays searchable.
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id     text NOT NULL,             -- stable: <document>-<ordinal>-<text hash>
    document_id  uuid NOT NULL,
    owner_token  text NOT NULL,
    run          integer NOT NULL,
    ordinal      integer NOT NULL,
    text         text NOT NULL,
    page_start   integer NOT NULL,
    page_end     integer NOT NULL,
    tokens       integer NOT NULL,
    tsv          tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    embedding    real[],                    -- NULL until embedded
    model        text,                      -- model id of the embedding
    created_at   timestamptz NOT NULL,
    -- The same chunk id may come back in a later run (same text, same
    -- place); both rows live until the later run is indexed.
    PRIMARY KEY (chunk_id, run)
);

CREATE INDEX IF NOT EXISTS chunks_tsv ON chunks USING GIN (tsv);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (document_id, run, ordinal);
CREATE INDEX IF NOT EXISTS chunks_by_owner ON chunks (owner_token);

-- What the projector needs to know to declare a run indexed.
ALTER TABLE documents ADD COLUMN IF NOT EXISTS chunks_final boolean NOT NULL DEFAULT false;
-- The run whose chunks search should use (the last indexed one).
ALTER TABLE documents ADD COLUMN IF NOT EXISTS indexed_run integer;
