-- At most one pending step per person and journey, enforced by the database: a trigger while a
-- step is pending, or two nodes enrolling the same person at once, inserts nothing (the
-- insert's ON CONFLICT DO NOTHING). It is also the index every lookup of a person's pending
-- step uses; without it PostgreSQL's planner, on a young table, walked the partial due-date
-- index and filtered every pending row for each insert.
CREATE UNIQUE INDEX journey_steps_one_pending ON journey_steps (tenant_id, subject_id, journey) WHERE status = 'pending';
DROP INDEX journey_steps_subject;
CREATE INDEX journey_steps_subject ON journey_steps (tenant_id, subject_id);
