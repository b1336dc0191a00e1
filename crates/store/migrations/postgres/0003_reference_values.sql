-- Verifier reference values per device model (EAT hwmodel), shared by every TAM replica.
-- measurements / hwversions: length-prefixed lists (u32 BE length | bytes, repeated).
-- removed = TRUE keeps a tombstone so that a model the OEM removed is not seeded again
-- from a replica's tam.toml at its next start.
CREATE TABLE reference_values (
    model TEXT PRIMARY KEY,
    measurements BYTEA NOT NULL,
    hwversions BYTEA NOT NULL,
    removed BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);
