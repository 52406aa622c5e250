-- A pull asks for the records of a few units changed after a cursor: with this index it reads
-- only those rows, not every record of the units.
CREATE INDEX records_by_unit_seq ON records (unit_code, seq);
