-- One row per document, folded from the document events of its owner.
-- Source: subject <ns>.ev.doc.<owner token>.<document id>.
CREATE TABLE IF NOT EXISTS documents (
    document_id   uuid PRIMARY KEY,
    owner_token   text NOT NULL,          -- subject-safe token (base32 of owner_id)
    owner_id      text NOT NULL,
    filename      text NOT NULL,
    content_type  text NOT NULL,          -- application/pdf | text/plain | text/markdown
    size_bytes    bigint NOT NULL,
    sha256        text NOT NULL,          -- blob address of the uploaded bytes
    topic         text,
    batch_id      text NOT NULL,
    stage         text NOT NULL,          -- uploaded | extracting | chunking | embedding | indexed | failed | cancelled
    run           integer NOT NULL,
    reason        text,                   -- why failed / cancelled
    pages_total   integer,
    chunks_total  integer NOT NULL DEFAULT 0,
    uploaded_at   timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    last_sequence bigint NOT NULL         -- stream sequence of the last event applied
);

-- Every query is scoped to one owner.
CREATE INDEX IF NOT EXISTS documents_by_owner ON documents (owner_token, uploaded_at DESC);
CREATE INDEX IF NOT EXISTS documents_by_owner_topic ON documents (owner_token, topic);
