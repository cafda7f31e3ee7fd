-- Ties each KEK id to its key bytes: the first 16 bytes of
-- HMAC-SHA256(key, "partner-auth vault key check v1"), never the key.
-- NULL for keys registered before this column existed; the server fills it
-- in the first time it loads such a key (after the key opened what is
-- stored under it).
ALTER TABLE vault_keys ADD COLUMN check_value BLOB CHECK (check_value IS NULL OR length(check_value) = 16);
