-- Batch mode (DESIGN.md §3.2): the TAM-signed packages of each batch (one row per
-- published sequence number; the newest is served to every device of the batch) and the
-- devices' asynchronous reports on them.
CREATE TABLE batch_packages (
    batch_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    owner TEXT NOT NULL,
    contents TEXT NOT NULL,
    bytes BLOB NOT NULL,
    etag TEXT NOT NULL,
    tam_signatures INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (batch_id, seq)
);
CREATE TABLE batch_reports (
    batch_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    success INTEGER NOT NULL,
    detail TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (batch_id, seq, device_id)
);
