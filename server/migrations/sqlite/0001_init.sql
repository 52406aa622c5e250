-- Administrative units: a tree with history. Codes are strings (leading zeros), never reused.
CREATE TABLE units (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    level       TEXT NOT NULL CHECK (level IN ('province', 'commune', 'village', 'district')),
    parent_code TEXT REFERENCES units (code),
    valid_from  TEXT,
    valid_to    TEXT
);
CREATE INDEX units_by_parent ON units (parent_code);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('field_officer', 'commune_lead', 'reviewer', 'admin')),
    unit_code     TEXT NOT NULL REFERENCES units (code),
    created_at    INTEGER NOT NULL
);

-- A registered phone. Its token is stored hashed; its Automerge actor is the only one it may write as.
CREATE TABLE devices (
    id           TEXT PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    actor_id     TEXT NOT NULL UNIQUE,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER,
    revoked_at   INTEGER
);

-- Monotonic sequence of everything devices pull; sync cursors point into it.
CREATE TABLE change_log (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT NOT NULL CHECK (kind IN ('record', 'template')),
    ref_id    TEXT NOT NULL,
    device_id TEXT,
    at        INTEGER NOT NULL
);

CREATE TABLE templates (
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    body         TEXT    NOT NULL,
    published_at INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    PRIMARY KEY (id, version)
);

-- One row per record: the Automerge document, and a projection of it for lists and pages.
CREATE TABLE records (
    id               TEXT PRIMARY KEY,
    template_id      TEXT    NOT NULL,
    template_version INTEGER NOT NULL,
    unit_code        TEXT    NOT NULL REFERENCES units (code),
    state            TEXT    NOT NULL,
    created_by       TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    doc              BLOB    NOT NULL,
    heads            TEXT    NOT NULL,
    values_json      TEXT    NOT NULL,
    seq              INTEGER NOT NULL
);
CREATE INDEX records_by_seq ON records (seq);
CREATE INDEX records_by_unit ON records (unit_code, template_id, state);

CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    csrf_token TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    username TEXT,
    action   TEXT NOT NULL,
    detail   TEXT NOT NULL
);
