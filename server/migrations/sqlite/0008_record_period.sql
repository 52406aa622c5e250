-- The period of a periodic report, projected for the completeness grid.
ALTER TABLE records ADD COLUMN period TEXT;
CREATE INDEX records_by_period ON records (template_id, period, unit_code);
