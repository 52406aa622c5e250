-- The app lock (src/lock.rs): the store's data key wrapped by the host's key and the officer's
-- PIN, and the wrong PINs in a row. Useless without both the host's key and the PIN.
CREATE TABLE app_lock (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    salt       BLOB    NOT NULL,
    wrapped    BLOB    NOT NULL,
    wrong_pins INTEGER NOT NULL DEFAULT 0
);
