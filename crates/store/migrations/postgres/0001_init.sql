-- OpenTrust TAM store, PostgreSQL schema (times: Unix seconds).
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    ueid BYTEA NOT NULL,
    model TEXT NOT NULL,
    hwversion TEXT NOT NULL,
    suite_alg BIGINT,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
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
    measurement BYTEA NOT NULL,
    agent_kid BYTEA NOT NULL,
    verified_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE agent_keys (
    kid BYTEA PRIMARY KEY,
    device_id TEXT NOT NULL,
    cose_key BYTEA NOT NULL,
    bound_at BIGINT NOT NULL
);
CREATE INDEX agent_keys_device ON agent_keys(device_id);
CREATE TABLE tokens (
    token BYTEA PRIMARY KEY,
    kind TEXT NOT NULL,
    device_id TEXT,
    challenge BYTEA,
    data_items BIGINT NOT NULL,
    sent BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    consumed_at BIGINT
);
CREATE INDEX tokens_expiry ON tokens(expires_at);
CREATE TABLE challenges (
    challenge BYTEA PRIMARY KEY,
    token BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    consumed_at BIGINT
);
CREATE INDEX challenges_expiry ON challenges(expires_at);
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    approved BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE sds (
    name TEXT PRIMARY KEY,
    sp_id TEXT NOT NULL,
    granted BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE components (
    id BYTEA PRIMARY KEY,
    sp_id TEXT NOT NULL,
    sd_name TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE manifests (
    component BYTEA NOT NULL,
    seq BIGINT NOT NULL,
    envelope BYTEA NOT NULL,
    image_digest BYTEA,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (component, seq)
);
CREATE TABLE deployments (
    id BIGSERIAL PRIMARY KEY,
    sp_id TEXT NOT NULL,
    component BYTEA NOT NULL,
    action TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_value TEXT NOT NULL,
    rollout_kind TEXT NOT NULL,
    rollout_value BIGINT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE progress (
    deployment_id BIGINT NOT NULL,
    device_id TEXT NOT NULL,
    component BYTEA NOT NULL,
    seq BIGINT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, device_id, component)
);
CREATE INDEX progress_device ON progress(device_id);
CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    detail TEXT NOT NULL
);
