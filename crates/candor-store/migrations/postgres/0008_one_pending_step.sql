-- At most one pending step per person and journey, enforced by the database: a trigger while a
-- step is pending, or two nodes enrolling the same person at once, inserts nothing (the
-- insert's ON CONFLICT DO NOTHING). It is also the index every lookup of a person's pending
-- step uses, led by the person so that a list of people (`subject_id = ANY(...)`) is an index
-- condition: with the tenant first, PostgreSQL's planner, on a young table, walked every pending
-- row of the tenant and filtered, once per ingested batch.
CREATE UNIQUE INDEX journey_steps_one_pending ON journey_steps (subject_id, journey, tenant_id) WHERE status = 'pending';
DROP INDEX journey_steps_subject;
CREATE INDEX journey_steps_subject ON journey_steps (tenant_id, subject_id);
