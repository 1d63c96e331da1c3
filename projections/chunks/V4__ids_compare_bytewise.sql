-- Chunk ids, owner tokens and model ids are opaque identifiers: they are
-- compared byte by byte (COLLATE "C"), not by the database's linguistic
-- collation. Their indexes (the primary keys above all) are what a
-- projector maintains for every row it writes and what a rebuild probes to
-- reuse lexemes; strcoll-based comparison was a visible share of that cost
-- (decision 010). Only the order of ties between equal-ranked search hits
-- (by chunk id) can change, and it stays deterministic. The indexes on
-- these columns are rebuilt by PostgreSQL; the rows are not rewritten.
ALTER TABLE chunks ALTER COLUMN chunk_id TYPE text COLLATE "C";
ALTER TABLE chunks ALTER COLUMN owner_token TYPE text COLLATE "C";
ALTER TABLE chunk_embeddings ALTER COLUMN chunk_id TYPE text COLLATE "C";
ALTER TABLE chunk_embeddings ALTER COLUMN model TYPE text COLLATE "C";
ALTER TABLE chunk_embeddings ALTER COLUMN owner_token TYPE text COLLATE "C";
