-- The scope last sent to each device (its units and the templates hidden from it, as JSON
-- arrays), under the token the device sends back. When the user's scope changes, the server
-- compares: only when records older than the device's cursor lie in what came into scope does
-- the device download its scope again. Two rows per device at most: the token it holds and
-- the one just sent (in case that answer is lost).
CREATE TABLE device_reach (
    device_id TEXT   NOT NULL,
    token     BIGINT NOT NULL,
    units     TEXT   NOT NULL,
    hidden    TEXT   NOT NULL,
    PRIMARY KEY (device_id, token)
);
