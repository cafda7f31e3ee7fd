-- A session can end because the browser holding it signed in again
-- ('replaced'). SQLite can not change a CHECK constraint in place, so both
-- tables are rebuilt. The refresh tokens move first: dropping `sessions`
-- while they still point at it would cascade and delete them.

CREATE TABLE sessions_new (
    id                 TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    user_id            TEXT    NOT NULL CHECK (length(user_id) BETWEEN 1 AND 64),
    partner_id         TEXT    NOT NULL CHECK (length(partner_id) BETWEEN 1 AND 64),
    roles              TEXT    NOT NULL CHECK (json_valid(roles) AND json_type(roles) = 'array'),
    auth_mode          TEXT    NOT NULL CHECK (auth_mode IN ('google', 'mock')),
    remember_me        INTEGER NOT NULL CHECK (remember_me IN (0, 1)),
    created_at         INTEGER NOT NULL,
    last_seen_at       INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    refresh_generation INTEGER NOT NULL CHECK (refresh_generation BETWEEN 0 AND 4294967295),
    rotated_at         INTEGER NOT NULL,
    revoked_at         INTEGER,
    revoke_reason      TEXT    CHECK (revoke_reason IN
                           ('logout', 'signed_out_elsewhere', 'forced', 'refresh_reuse', 'idle',
                            'replaced')),
    impersonator       TEXT    CHECK (length(impersonator) BETWEEN 1 AND 64),
    CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL))
) STRICT;

INSERT INTO sessions_new
    (id, user_id, partner_id, roles, auth_mode, remember_me, created_at, last_seen_at,
     expires_at, refresh_generation, rotated_at, revoked_at, revoke_reason, impersonator)
SELECT id, user_id, partner_id, roles, auth_mode, remember_me, created_at, last_seen_at,
       expires_at, refresh_generation, rotated_at, revoked_at, revoke_reason, impersonator
FROM sessions;

CREATE TABLE refresh_tokens_new (
    digest     BLOB    NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    session_id TEXT    NOT NULL REFERENCES sessions_new (id) ON DELETE CASCADE,
    generation INTEGER NOT NULL CHECK (generation BETWEEN 0 AND 4294967295),
    issued_at  INTEGER NOT NULL,
    used_at    INTEGER
) STRICT, WITHOUT ROWID;

INSERT INTO refresh_tokens_new (digest, session_id, generation, issued_at, used_at)
SELECT digest, session_id, generation, issued_at, used_at FROM refresh_tokens;

DROP TABLE refresh_tokens;
DROP TABLE sessions;

-- Renaming rewrites the foreign key of refresh_tokens_new to the new name.
ALTER TABLE sessions_new RENAME TO sessions;
ALTER TABLE refresh_tokens_new RENAME TO refresh_tokens;

CREATE INDEX sessions_user_created ON sessions (user_id, created_at DESC);
CREATE INDEX sessions_partner_created ON sessions (partner_id, created_at DESC);
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
