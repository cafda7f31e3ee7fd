-- Login sessions and their refresh tokens.
--
-- Times are whole microseconds since the Unix epoch (UTC) in INTEGER columns,
-- so comparisons and ORDER BY are exact. Enumerated columns hold the same
-- spellings as the JSON API and are checked here, so a row written behind the
-- library's back with an unknown value is refused at the door.

CREATE TABLE sessions (
    -- UUID, lowercase hyphenated.
    id                 TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    user_id            TEXT    NOT NULL CHECK (length(user_id) BETWEEN 1 AND 64),
    partner_id         TEXT    NOT NULL CHECK (length(partner_id) BETWEEN 1 AND 64),
    -- JSON array of {"role": "super_admin" | "admin" | "trader" | "viewer", "partner"?: id}.
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
                           ('logout', 'signed_out_elsewhere', 'forced', 'refresh_reuse', 'idle')),
    impersonator       TEXT    CHECK (length(impersonator) BETWEEN 1 AND 64),
    -- A revoked session always says why, and only a revoked one does.
    CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL))
) STRICT;

CREATE INDEX sessions_user_created ON sessions (user_id, created_at DESC);
CREATE INDEX sessions_partner_created ON sessions (partner_id, created_at DESC);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- One row per refresh token ever issued, keyed by the token's SHA-256. The
-- token itself is never stored.
CREATE TABLE refresh_tokens (
    digest     BLOB    NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    generation INTEGER NOT NULL CHECK (generation BETWEEN 0 AND 4294967295),
    issued_at  INTEGER NOT NULL,
    used_at    INTEGER
) STRICT, WITHOUT ROWID;

CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
