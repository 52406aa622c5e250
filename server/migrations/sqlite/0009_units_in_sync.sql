-- Units travel to devices with sync (each device gets its unit subtree), so every change to a
-- unit takes a change-log sequence like records and templates do. Triggers keep this true for
-- every writer (the admin commands, the CSV import, the web).
CREATE TABLE change_log_new (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT NOT NULL CHECK (kind IN ('record', 'template', 'unit')),
    ref_id    TEXT NOT NULL,
    device_id TEXT,
    at        INTEGER NOT NULL
);
INSERT INTO change_log_new (seq, kind, ref_id, device_id, at) SELECT seq, kind, ref_id, device_id, at FROM change_log;
DROP TABLE change_log;
ALTER TABLE change_log_new RENAME TO change_log;

ALTER TABLE units ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
INSERT INTO change_log (kind, ref_id, at) SELECT 'unit', code, CAST(strftime('%s', 'now') AS INTEGER) FROM units ORDER BY code;
UPDATE units SET seq = (SELECT MAX(c.seq) FROM change_log c WHERE c.kind = 'unit' AND c.ref_id = units.code);
CREATE INDEX units_by_seq ON units (seq);

CREATE TRIGGER units_logged_on_insert AFTER INSERT ON units BEGIN
    INSERT INTO change_log (kind, ref_id, at) VALUES ('unit', NEW.code, CAST(strftime('%s', 'now') AS INTEGER));
    UPDATE units SET seq = last_insert_rowid() WHERE code = NEW.code;
END;

CREATE TRIGGER units_logged_on_update AFTER UPDATE OF name, level, parent_code, valid_from, valid_to ON units BEGIN
    INSERT INTO change_log (kind, ref_id, at) VALUES ('unit', NEW.code, CAST(strftime('%s', 'now') AS INTEGER));
    UPDATE units SET seq = last_insert_rowid() WHERE code = NEW.code;
END;
