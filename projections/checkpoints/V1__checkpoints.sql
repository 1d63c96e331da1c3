-- Where each projector consumer is in the event stream. Updated in the same
-- transaction as the read-model rows it covers: that is what makes a
-- redelivered event harmless (exactly-once effect).
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    consumer      text PRIMARY KEY,
    last_sequence bigint NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
