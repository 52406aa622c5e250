-- The administrative units the device's user works in (their unit and everything below it),
-- received with sync. Unit names and codes are public (QĐ 19/2025), so they are not sealed.
CREATE TABLE units (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    level       TEXT NOT NULL,
    parent_code TEXT
);
