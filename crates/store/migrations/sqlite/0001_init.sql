-- OpenTrust TAM store, SQLite schema (times: Unix seconds).
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    ueid BLOB NOT NULL,
    model TEXT NOT NULL,
    hwversion TEXT NOT NULL,
    suite_alg INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE device_tags (
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (device_id, tag)
);
CREATE INDEX device_tags_tag ON device_tags(tag);
CREATE TABLE attestations (
    device_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    tee_version TEXT NOT NULL,
    measurement BLOB NOT NULL,
    agent_kid BLOB NOT NULL,
    verified_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE agent_keys (
    kid BLOB PRIMARY KEY,
    device_id TEXT NOT NULL,
    cose_key BLOB NOT NULL,
    bound_at INTEGER NOT NULL
);
CREATE INDEX agent_keys_device ON agent_keys(device_id);
CREATE TABLE tokens (
    token BLOB PRIMARY KEY,
    kind TEXT NOT NULL,
    device_id TEXT,
    challenge BLOB,
    data_items INTEGER NOT NULL,
    sent BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    consumed_at INTEGER
);
CREATE INDEX tokens_expiry ON tokens(expires_at);
CREATE TABLE challenges (
    challenge BLOB PRIMARY KEY,
    token BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    consumed_at INTEGER
);
CREATE INDEX challenges_expiry ON challenges(expires_at);
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    approved INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE sds (
    name TEXT PRIMARY KEY,
    sp_id TEXT NOT NULL,
    granted INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE components (
    id BLOB PRIMARY KEY,
    sp_id TEXT NOT NULL,
    sd_name TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE manifests (
    component BLOB NOT NULL,
    seq INTEGER NOT NULL,
    envelope BLOB NOT NULL,
    image_digest BLOB,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (component, seq)
);
CREATE TABLE deployments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sp_id TEXT NOT NULL,
    component BLOB NOT NULL,
    action TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_value TEXT NOT NULL,
    rollout_kind TEXT NOT NULL,
    rollout_value INTEGER NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE progress (
    deployment_id INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    component BLOB NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, device_id, component)
);
CREATE INDEX progress_device ON progress(device_id);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    detail TEXT NOT NULL
);
