-- Which version of each projection serves queries. `mnemo projections
-- rebuild NAME` builds version N+1 beside version N from sequence 1 and
-- swaps it in atomically; the swap bumps `version` here.
CREATE TABLE IF NOT EXISTS projection_versions (
    projection     text PRIMARY KEY,
    version        integer NOT NULL,
    -- Stream sequence the version had applied when it went live (0: built live).
    built_through  bigint NOT NULL DEFAULT 0,
    swapped_at     timestamptz NOT NULL DEFAULT now()
);

INSERT INTO projection_versions (projection, version)
VALUES ('documents', 1), ('chunks', 1), ('stage_timings', 1)
ON CONFLICT (projection) DO NOTHING;
