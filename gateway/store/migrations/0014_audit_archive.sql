-- Retention (issue 16 point 5): `gateway audit archive` moves the oldest audit entries, a prefix
-- of the chain, into signed archive files. The floor is the last entry moved out (0 and the
-- genesis hash while none has been): the live chain continues from it, and only entries at or
-- below it may be deleted (the triggers below); it only ever grows.
CREATE TABLE audit_floor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL CHECK (seq >= 0),
    hash TEXT NOT NULL,
    files BIGINT NOT NULL DEFAULT 0 CHECK (files >= 0),
    updated_at TEXT NOT NULL
);
INSERT INTO audit_floor (id, seq, hash, files, updated_at) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', 0, '');
-- The archive's cut: the first entry appended on or after a date.
CREATE INDEX audit_log_by_at ON audit_log (at);
