-- OTrP profile (additive): per-device OTrP state (last DSI and its dsihash), the OTrP
-- requests in flight (one-time rids), and the SPs' TA-signer certificates (spcert).
CREATE TABLE otrp_devices (
    device_id TEXT PRIMARY KEY,
    did TEXT NOT NULL,
    tee_name TEXT NOT NULL,
    tee_cert BYTEA NOT NULL,
    dsi TEXT NOT NULL,
    dsihash TEXT NOT NULL,
    tid TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE otrp_requests (
    rid TEXT PRIMARY KEY,
    device_id TEXT,
    tid TEXT NOT NULL,
    kind TEXT NOT NULL,
    sent BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    consumed_at BIGINT
);
CREATE INDEX otrp_requests_expiry ON otrp_requests(expires_at);
CREATE TABLE sp_certs (
    sp_id TEXT NOT NULL,
    cert BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (sp_id, cert)
);
