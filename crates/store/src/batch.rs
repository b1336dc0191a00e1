//! Records of batch mode (DESIGN.md §3.2): the TAM-signed packages of a batch and the
//! devices' asynchronous reports on them (migration `0004_batch`).

/// One published batch package (the same bytes for every device of the batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPackageRecord {
    /// Batch id (`[A-Za-z0-9._-]{1,64}`).
    pub batch_id: String,
    /// Batch sequence number: grows with every package of the batch
    /// ([`crate::Store::insert_batch_package`] refuses an equal or lower one).
    pub seq: u64,
    /// The account that published it (the first publisher owns the batch id).
    pub owner: String,
    /// What it carries, for people (e.g. `sd1/sd#1, sd1/door-lock#3`).
    pub contents: String,
    /// The COSE_Sign1 TEEP Update (signed once by the TAM).
    pub bytes: Vec<u8>,
    /// Its strong HTTP entity tag (quoted).
    pub etag: String,
    /// Signatures the TAM made to build it (1: the Update; SD manifests are signed at SD
    /// creation, SP manifests by the SP).
    pub tam_signatures: u64,
    /// Publication time (Unix seconds).
    pub created_at: u64,
}

/// One device's report on one batch package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReportRecord {
    /// Batch id.
    pub batch_id: String,
    /// The package's batch sequence number.
    pub seq: u64,
    /// The device (hex UEID) whose bound Agent key signed the report.
    pub device_id: String,
    /// Applied (TEEP Success) or failed (TEEP Error).
    pub success: bool,
    /// The Error's code and message, or empty.
    pub detail: String,
    /// When the TAM received it (Unix seconds).
    pub received_at: u64,
}

/// Report counts of one batch package.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReportCounts {
    /// Devices that reported Success.
    pub applied: u64,
    /// Devices that reported an Error.
    pub failed: u64,
}

/// A device model of the OTrP-profile batch command package (our extension, migration
/// `0005_otrp_batch`): the public half of the device key every device of the model
/// shares, which the TAM encrypts each package's `content` and TA key to.
///
/// The OTrP batch tables reuse [`BatchPackageRecord`] (its `batch_id` is the model name,
/// which is also the package id `pkgid`) and [`BatchReportRecord`] (one device's
/// `OTrPBatchResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtrpBatchModelRecord {
    /// Model name (the batch name given to `otrp device provision --batch`).
    pub model: String,
    /// The shared device public key (SPKI DER).
    pub public_key: Vec<u8>,
    /// The `tee` routing name of the model's TEE.
    pub tee: String,
    /// The account that registered the key.
    pub registered_by: String,
    /// When (Unix seconds).
    pub updated_at: u64,
}
