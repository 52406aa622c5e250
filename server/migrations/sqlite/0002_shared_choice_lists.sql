-- Choice lists shared between templates. A template that uses one gets a copy of the list
-- as it stood when the template was published, so a version never changes under a record.
CREATE TABLE shared_choice_lists (
    name       TEXT PRIMARY KEY,
    body       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);
