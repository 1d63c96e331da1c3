-- Vectors move out of `chunks` into their own table, keyed by model, so a
-- backfill with another model can live beside the current one. A vector is
-- stored as its little-endian f32 bytes (4 × dims): half the size of a
-- real[] on the wire and on disk, and read back without parsing.
CREATE TABLE IF NOT EXISTS chunk_embeddings (
    chunk_id     text NOT NULL,
    run          integer NOT NULL,
    model        text NOT NULL,           -- model id, e.g. all-MiniLM-L6-v2@<sha256 prefix>
    document_id  uuid NOT NULL,
    owner_token  text NOT NULL,
    dims         integer NOT NULL,
    vector       bytea NOT NULL,          -- dims little-endian f32s
    PRIMARY KEY (chunk_id, run, model)
);

CREATE INDEX IF NOT EXISTS chunk_embeddings_by_document ON chunk_embeddings (document_id, run);
CREATE INDEX IF NOT EXISTS chunk_embeddings_by_model ON chunk_embeddings (model, owner_token);

-- Existing vectors (real[]) become bytes: float4send is big-endian, so each
-- value's four bytes are reversed.
INSERT INTO chunk_embeddings (chunk_id, run, model, document_id, owner_token, dims, vector)
SELECT c.chunk_id, c.run, coalesce(c.model, ''), c.document_id, c.owner_token,
       array_length(c.embedding, 1),
       (SELECT string_agg(substring(b FROM 4 FOR 1) || substring(b FROM 3 FOR 1)
                          || substring(b FROM 2 FOR 1) || substring(b FROM 1 FOR 1),
                          ''::bytea ORDER BY i)
          FROM unnest(c.embedding) WITH ORDINALITY AS u(x, i), LATERAL float4send(u.x) AS b)
  FROM chunks c
 WHERE c.embedding IS NOT NULL
ON CONFLICT DO NOTHING;

ALTER TABLE chunks DROP COLUMN IF EXISTS embedding;
ALTER TABLE chunks DROP COLUMN IF EXISTS model;
