-- The audit page lists a user's or an action's lines newest first.
CREATE INDEX audit_by_user ON audit_log (username, id);
CREATE INDEX audit_by_action ON audit_log (action, id);
