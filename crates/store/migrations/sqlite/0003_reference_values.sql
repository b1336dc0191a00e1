-- Verifier reference values per device model (EAT hwmodel), shared by every TAM replica.
-- measurements / hwversions: length-prefixed lists (u32 BE length | bytes, repeated).
-- removed = 1 keeps a tombstone so that a model the OEM removed is not seeded again
-- from a replica's tam.toml at its next start.
CREATE TABLE reference_values (
    model TEXT PRIMARY KEY,
    measurements BLOB NOT NULL,
    hwversions BLOB NOT NULL,
    removed INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);
