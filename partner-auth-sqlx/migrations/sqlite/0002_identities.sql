-- Provider identities (issuer + subject) linked to directory users.
-- One link per subject, and one subject per user and issuer, so a second
-- account can never take over a user by presenting the same e-mail address.
CREATE TABLE identities (
    issuer     TEXT    NOT NULL CHECK (length(issuer) BETWEEN 1 AND 512),
    subject    TEXT    NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    user_id    TEXT    NOT NULL,
    partner_id TEXT    NOT NULL,
    linked_at  INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject),
    UNIQUE (issuer, user_id)
) STRICT;
