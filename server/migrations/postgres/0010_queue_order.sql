-- The review queue pages in SQL, newest change first (keyset pagination on updated_at, id):
-- an index in that order, and one under each filter a reviewer uses most.
CREATE INDEX records_by_update ON records (updated_at, id);
CREATE INDEX records_by_template_update ON records (template_id, updated_at, id);
CREATE INDEX records_by_state_update ON records (state, updated_at, id);
