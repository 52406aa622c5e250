-- `json_group_array(text)`: a JSON array (as text) of the values aggregated, '[]' for none, as
-- SQLite's built-in gives it, so the same SQL runs on both.
CREATE FUNCTION json_group_array_final(items TEXT[]) RETURNS TEXT
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT COALESCE(array_to_json(items)::text, '[]') $$;

CREATE AGGREGATE json_group_array(TEXT) (
    SFUNC = array_append,
    STYPE = TEXT[],
    INITCOND = '{}',
    FINALFUNC = json_group_array_final
);
