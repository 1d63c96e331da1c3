-- The learning read model, folded from <ns>.ev.learn.<owner token>.<kind>.<id>
-- by the projector's learning runner (checkpoint `<ns>_learning`), with the
-- same per-aggregate folds as audit replay (mnemo_domain::learn::learner).
-- Ids are only unique per owner (they are part of the owner's subjects), so
-- every key starts with the owner token.

CREATE TABLE IF NOT EXISTS learning_cards (
    owner_token        text NOT NULL,
    card_id            uuid NOT NULL,
    deck               text NOT NULL,
    front              text NOT NULL,
    back               text NOT NULL,
    -- The cited source, if any (document, chunk, page).
    source_document_id uuid,
    source_chunk_id    text,
    source_page        integer,
    created_at         timestamptz NOT NULL,
    -- The schedule after the last review (FSRS-6, as recorded in the event).
    state              text NOT NULL,        -- learning | review | relearning
    step               integer,
    stability          double precision,
    difficulty         double precision,
    due                timestamptz NOT NULL,
    last_review        timestamptz,
    reviews            integer NOT NULL,
    suspended          boolean NOT NULL,
    deleted            boolean NOT NULL,
    last_sequence      bigint NOT NULL,
    PRIMARY KEY (owner_token, card_id)
);

-- DueCards: an owner's active cards by due date.
CREATE INDEX IF NOT EXISTS learning_cards_due ON learning_cards (owner_token, due)
    WHERE NOT suspended AND NOT deleted;

-- Every review, with the card's state before it (retention counts reviews
-- of cards in the review state).
CREATE TABLE IF NOT EXISTS learning_reviews (
    owner_token   text NOT NULL,
    card_id       uuid NOT NULL,
    review_id     uuid NOT NULL,
    reviewed_at   timestamptz NOT NULL,
    rating        smallint NOT NULL,         -- 1 again .. 4 easy
    state_before  text NOT NULL,
    state_after   text NOT NULL,
    sequence      bigint NOT NULL,
    PRIMARY KEY (owner_token, card_id, review_id)
);

CREATE INDEX IF NOT EXISTS learning_reviews_by_time ON learning_reviews (owner_token, reviewed_at);

CREATE TABLE IF NOT EXISTS learning_topics (
    owner_token   text NOT NULL,
    topic_id      uuid NOT NULL,
    name          text NOT NULL,
    last_sequence bigint NOT NULL,
    PRIMARY KEY (owner_token, topic_id)
);

CREATE TABLE IF NOT EXISTS learning_topic_documents (
    owner_token   text NOT NULL,
    topic_id      uuid NOT NULL,
    document_id   uuid NOT NULL,
    PRIMARY KEY (owner_token, topic_id, document_id)
);

CREATE TABLE IF NOT EXISTS learning_sessions (
    owner_token   text NOT NULL,
    session_id    uuid NOT NULL,
    topic_id      uuid,
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    last_sequence bigint NOT NULL,
    PRIMARY KEY (owner_token, session_id)
);
