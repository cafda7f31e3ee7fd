-- The credential vault: sealed credentials, key-encryption-key metadata, the
-- wrapped audit-chain key, and the audit log.
--
-- Times are whole microseconds since the Unix epoch (UTC) in INTEGER columns.
-- Nothing here is secret in the clear: `envelope` and `wrapped` hold
-- AES-256-GCM ciphertext (docs/vault-format.md); key bytes are never stored.

CREATE TABLE vault_credentials (
    -- UUID, lowercase hyphenated.
    id          TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    partner_id  TEXT    NOT NULL CHECK (length(partner_id) BETWEEN 1 AND 64),
    owner_id    TEXT    NOT NULL CHECK (length(owner_id) BETWEEN 1 AND 64),
    kind        TEXT    NOT NULL CHECK (kind IN
                    ('oauth_refresh_token', 'api_key', 'broker_token', 'delegated_grant', 'totp_secret')),
    label       TEXT    NOT NULL CHECK (length(label) BETWEEN 1 AND 128),
    broker      TEXT    CHECK (length(broker) BETWEEN 1 AND 64),
    reference   TEXT    CHECK (length(reference) BETWEEN 1 AND 512),
    status      TEXT    NOT NULL CHECK (status IN ('active', 'revoked')),
    generation  INTEGER NOT NULL CHECK (generation BETWEEN 0 AND 4294967295),
    rotation    TEXT    NOT NULL CHECK (rotation IN ('current', 'due', 'overdue')),
    created_at  INTEGER NOT NULL,
    rotated_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER,
    kek_id      TEXT    CHECK (length(kek_id) BETWEEN 1 AND 32),
    envelope    BLOB    NOT NULL,
    -- A revoked credential says when, and has no envelope left.
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL)),
    CHECK ((kek_id IS NULL) = (length(envelope) = 0))
) STRICT;

CREATE INDEX vault_credentials_partner ON vault_credentials (partner_id, created_at, id);
CREATE INDEX vault_credentials_kek ON vault_credentials (kek_id, partner_id, id)
    WHERE kek_id IS NOT NULL;
CREATE INDEX vault_credentials_reference ON vault_credentials (partner_id, kind, reference)
    WHERE reference IS NOT NULL;

CREATE TABLE vault_keys (
    id          TEXT    NOT NULL PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 32),
    state       TEXT    NOT NULL CHECK (state IN ('staged', 'primary', 'previous', 'retired')),
    -- Wraps reserved so far: an upper bound on data keys this KEK wrapped.
    wraps       INTEGER NOT NULL CHECK (wraps >= 0),
    created_at  INTEGER NOT NULL,
    changed_at  INTEGER NOT NULL
) STRICT;

-- Keys the library itself uses (the audit-chain key), wrapped under a KEK.
CREATE TABLE vault_system_keys (
    name        TEXT    NOT NULL PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    wrapped     BLOB    NOT NULL
) STRICT;

CREATE TABLE audit_log (
    seq          INTEGER NOT NULL PRIMARY KEY CHECK (seq >= 1),
    at           INTEGER NOT NULL,
    partner_id   TEXT    CHECK (length(partner_id) BETWEEN 1 AND 64),
    actor        TEXT    CHECK (length(actor) BETWEEN 1 AND 64),
    impersonator TEXT    CHECK (length(impersonator) BETWEEN 1 AND 64),
    channel      TEXT    NOT NULL CHECK (channel IN ('web', 'api', 'scheduler', 'cli')),
    action       TEXT    NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    target       TEXT    CHECK (length(target) <= 256),
    outcome      TEXT    NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    detail       TEXT    CHECK (length(detail) <= 512),
    key_id       TEXT    NOT NULL CHECK (length(key_id) BETWEEN 1 AND 32),
    prev_hash    BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash         BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;

CREATE INDEX audit_log_partner ON audit_log (partner_id, seq);
CREATE INDEX audit_log_partner_at ON audit_log (partner_id, at);

-- Where the chain continues after the retention purge; at most one row.
CREATE TABLE audit_anchor (
    id          INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    hash        BLOB    NOT NULL CHECK (length(hash) = 32),
    key_id      TEXT    NOT NULL CHECK (length(key_id) BETWEEN 1 AND 32),
    at          INTEGER NOT NULL,
    mac         BLOB    NOT NULL CHECK (length(mac) = 32)
) STRICT;

-- Append-only: entries are never changed, and removed only up to the anchor
-- by the retention purge. (Whoever can write the file can drop these
-- triggers; the keyed hash chain is what detects that.)
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > COALESCE((SELECT seq FROM audit_anchor WHERE id = 1), 0)
BEGIN
    SELECT RAISE(ABORT, 'audit_log entries are removed only by the retention purge');
END;

CREATE TRIGGER audit_log_no_insert_behind_anchor BEFORE INSERT ON audit_log
WHEN NEW.seq <= COALESCE((SELECT seq FROM audit_anchor WHERE id = 1), 0)
BEGIN
    SELECT RAISE(ABORT, 'audit sequence behind the purge anchor');
END;
