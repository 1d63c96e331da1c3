-- When each document spent time in each stage of each run, from event
-- timestamps (Mnemo-Occurred-At). A stage row opens when the document enters
-- it and closes when it leaves; analytics (p50/p95 per stage, error rates)
-- are queries over this table.
CREATE TABLE IF NOT EXISTS stage_timings (
    document_id  uuid NOT NULL,
    owner_token  text NOT NULL,
    run          integer NOT NULL,
    stage        text NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    outcome      text,                      -- next stage, or failed / cancelled
    PRIMARY KEY (document_id, run, stage)
);

CREATE INDEX IF NOT EXISTS stage_timings_by_stage ON stage_timings (stage, finished_at);
