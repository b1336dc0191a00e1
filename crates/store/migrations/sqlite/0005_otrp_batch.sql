-- OTrP-profile batch command packages (our extension, docs/CONSTRAINED.md): kept apart
-- from the TEEP batch tables (0004) because a package is keyed by the device model
-- that shares one device key, the TAM encrypts to that model's registered key, and a
-- result is a TEE-signed OTrPBatchResult of an OTrP device (found by its `did`).
CREATE TABLE otrp_batch_models (
    model TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    tee TEXT NOT NULL,
    registered_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE otrp_batch_packages (
    model TEXT NOT NULL,
    seq INTEGER NOT NULL,
    owner TEXT NOT NULL,
    contents TEXT NOT NULL,
    bytes BLOB NOT NULL,
    etag TEXT NOT NULL,
    tam_signatures INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (model, seq)
);
CREATE TABLE otrp_batch_results (
    model TEXT NOT NULL,
    seq INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    success INTEGER NOT NULL,
    detail TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (model, seq, device_id)
);
CREATE INDEX otrp_devices_did ON otrp_devices(did);
