-- Restricted templates (tips from informants) are readable only by users granted them.
CREATE TABLE template_grants (
    username    TEXT NOT NULL,
    template_id TEXT NOT NULL,
    PRIMARY KEY (username, template_id)
);
