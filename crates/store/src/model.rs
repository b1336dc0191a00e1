//! The records the TAM keeps. Plain data; the TAM core (`otrp-tam`) gives them meaning.
//!
//! Identifiers: a device is named by the lowercase hex of its UEID; a trusted component by
//! the deterministic CBOR encoding of its SUIT_Component_Identifier (`[* bstr]`), kept as
//! bytes; times are Unix seconds (`u64` in the API, `BIGINT` in SQL).

/// A device known to the TAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Lowercase hex of the UEID.
    pub id: String,
    /// The UEID.
    pub ueid: Vec<u8>,
    /// Hardware model (EAT `hwmodel`).
    pub model: String,
    /// Hardware version (EAT `hwversion`).
    pub hwversion: String,
    /// Free-form tags deployments can target.
    pub tags: Vec<String>,
    /// COSE algorithm id of the Agent's cipher suite, once known (negotiated).
    pub suite_alg: Option<i64>,
    /// Revoked devices are refused.
    pub revoked: bool,
    /// When the record was made.
    pub created_at: u64,
}

/// EAR-shaped trustworthiness tier of an attestation result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArStatus {
    /// The evidence matched every reference value.
    Affirming,
    /// Accepted with reservations.
    Warning,
    /// Refused.
    Contraindicated,
}

impl ArStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ArStatus::Affirming => "affirming",
            ArStatus::Warning => "warning",
            ArStatus::Contraindicated => "contraindicated",
        }
    }
    /// Parses the stored form (unknown text is `Contraindicated`, the safe reading).
    pub fn parse(s: &str) -> ArStatus {
        match s {
            "affirming" => ArStatus::Affirming,
            "warning" => ArStatus::Warning,
            _ => ArStatus::Contraindicated,
        }
    }
}

/// A stored attestation result (one per device, the newest wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationRecord {
    /// Device id.
    pub device_id: String,
    /// EAR status.
    pub status: ArStatus,
    /// TEE version (EAT `hwversion` or the TEE's name/version claim).
    pub tee_version: String,
    /// The measurement that was checked against the reference values.
    pub measurement: Vec<u8>,
    /// RFC 9679 thumbprint of the Agent key bound by `cnf`.
    pub agent_kid: Vec<u8>,
    /// When it was verified.
    pub verified_at: u64,
    /// When it stops being reusable.
    pub expires_at: u64,
}

/// An Agent (TEEP message-signing) key bound to a device by attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentKeyRecord {
    /// RFC 9679 thumbprint of the key (COSE `kid`).
    pub kid: Vec<u8>,
    /// Device id.
    pub device_id: String,
    /// The key as an encoded COSE_Key.
    pub cose_key: Vec<u8>,
    /// When it was bound.
    pub bound_at: u64,
}

/// An Agent key with what its device has on record ([`crate::Store::known_agent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownAgent {
    /// The key.
    pub key: AgentKeyRecord,
    /// The device's attestation result, if any.
    pub attestation: Option<AttestationRecord>,
    /// The device the key is bound to (none if its row is gone).
    pub device: Option<DeviceRecord>,
}

/// What a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Sent in a QueryRequest; answered by a QueryResponse (or Error).
    Query,
    /// Sent in an Update; answered by Success or Error.
    Update,
}

impl TokenKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Query => "query",
            TokenKind::Update => "update",
        }
    }
    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "query" => Some(TokenKind::Query),
            "update" => Some(TokenKind::Update),
            _ => None,
        }
    }
}

/// One item an Update carried (for bookkeeping when Success or Error comes back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentItem {
    /// Component id (encoded).
    pub component: Vec<u8>,
    /// Sequence number sent (0 for a deletion).
    pub seq: u64,
    /// Deployment it serves (0: requested by the device).
    pub deployment_id: i64,
    /// True when this is a deletion (unneeded-manifest-list).
    pub delete: bool,
}

/// An outstanding request of a TEEP session: the token and everything needed to continue
/// the session on any TAM replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token (8..64 random bytes).
    pub token: Vec<u8>,
    /// Message it was sent in.
    pub kind: TokenKind,
    /// Device, when known.
    pub device_id: Option<String>,
    /// The challenge sent with it, if attestation was requested.
    pub challenge: Option<Vec<u8>>,
    /// data-item-requested bits.
    pub data_items: u64,
    /// What an Update carried.
    pub sent: Vec<SentItem>,
    /// When it was issued.
    pub created_at: u64,
    /// After this time it is refused.
    pub expires_at: u64,
    /// When it was consumed (accepted once).
    pub consumed_at: Option<u64>,
}

/// A challenge (attestation nonce), one-time and expiring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRecord {
    /// The nonce.
    pub challenge: Vec<u8>,
    /// The token of the QueryRequest that carried it.
    pub token: Vec<u8>,
    /// Issued at.
    pub created_at: u64,
    /// Expiry.
    pub expires_at: u64,
    /// Consumed at.
    pub consumed_at: Option<u64>,
}

/// Why a one-time value (token, challenge) could not be consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeRefusal {
    /// Never issued (or purged).
    Unknown,
    /// Already consumed once.
    Replayed,
    /// Past its expiry.
    Expired,
}

/// Account kinds (tenancy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountKind {
    /// The OEM (one per TAM deployment; approves SPs, grants SDs, co-signs).
    Oem,
    /// A Service Provider.
    Sp,
    /// A device administrator (devices, tags, revocation).
    DeviceAdmin,
}

impl AccountKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Oem => "oem",
            AccountKind::Sp => "sp",
            AccountKind::DeviceAdmin => "device-admin",
        }
    }
    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<AccountKind> {
        match s {
            "oem" => Some(AccountKind::Oem),
            "sp" => Some(AccountKind::Sp),
            "device-admin" => Some(AccountKind::DeviceAdmin),
            _ => None,
        }
    }
}

/// An account of the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// Account id (unique name).
    pub id: String,
    /// Kind.
    pub kind: AccountKind,
    /// SHA-256 of the API token (the token itself is never stored).
    pub token_hash: Vec<u8>,
    /// For SPs: approved by the OEM.
    pub approved: bool,
    /// Creation time.
    pub created_at: u64,
}

/// A Security Domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdRecord {
    /// SD name (unique in the TAM).
    pub name: String,
    /// The SP it serves.
    pub sp_id: String,
    /// Whether the OEM granted it (OEM-owned-SD configuration), or it was made by an
    /// approved SP (OEM-gated).
    pub granted: bool,
    /// Creation time.
    pub created_at: u64,
}

/// A trusted component in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentRecord {
    /// Encoded SUIT_Component_Identifier.
    pub id: Vec<u8>,
    /// Owning SP.
    pub sp_id: String,
    /// SD it installs into.
    pub sd_name: String,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: u64,
}

/// State of a manifest in the dual-control workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestStatus {
    /// Deliverable.
    Ready,
    /// Waits for the OEM's co-signature (dual control).
    AwaitingCosign,
    /// Refused by the OEM.
    Rejected,
}

impl ManifestStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ManifestStatus::Ready => "ready",
            ManifestStatus::AwaitingCosign => "awaiting-cosign",
            ManifestStatus::Rejected => "rejected",
        }
    }
    /// Parses the stored form (unknown text is `Rejected`).
    pub fn parse(s: &str) -> ManifestStatus {
        match s {
            "ready" => ManifestStatus::Ready,
            "awaiting-cosign" => ManifestStatus::AwaitingCosign,
            _ => ManifestStatus::Rejected,
        }
    }
}

/// One signed SUIT envelope of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    /// Component id (encoded).
    pub component: Vec<u8>,
    /// `suit-manifest-sequence-number` (must grow per component).
    pub seq: u64,
    /// The signed SUIT envelope.
    pub envelope: Vec<u8>,
    /// SUIT digest of the image (encoded SUIT_Digest), when the manifest names one.
    pub image_digest: Option<Vec<u8>>,
    /// Workflow state.
    pub status: ManifestStatus,
    /// Registration time.
    pub created_at: u64,
}

/// Which devices a deployment targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One device.
    Device(String),
    /// Devices with a tag.
    Tag(String),
    /// Devices of a model.
    Model(String),
    /// Every device.
    All,
}

impl Target {
    /// (kind, value) as stored.
    pub fn to_parts(&self) -> (&'static str, &str) {
        match self {
            Target::Device(d) => ("device", d),
            Target::Tag(t) => ("tag", t),
            Target::Model(m) => ("model", m),
            Target::All => ("all", ""),
        }
    }
    /// From the stored parts.
    pub fn from_parts(kind: &str, value: String) -> Option<Target> {
        match kind {
            "device" => Some(Target::Device(value)),
            "tag" => Some(Target::Tag(value)),
            "model" => Some(Target::Model(value)),
            "all" => Some(Target::All),
            _ => None,
        }
    }
    /// Whether `device` is targeted.
    pub fn matches(&self, device: &DeviceRecord) -> bool {
        match self {
            Target::Device(d) => *d == device.id,
            Target::Tag(t) => device.tags.iter().any(|x| x == t),
            Target::Model(m) => *m == device.model,
            Target::All => true,
        }
    }
}

/// How far a deployment reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// Every targeted device.
    Full,
    /// A stable pseudo-random percentage (0..=100) of the targeted devices.
    Percent(u8),
    /// At most this many devices.
    Count(u64),
}

impl Rollout {
    /// (kind, value) as stored.
    pub fn to_parts(self) -> (&'static str, i64) {
        match self {
            Rollout::Full => ("full", 0),
            Rollout::Percent(p) => ("percent", i64::from(p)),
            Rollout::Count(n) => ("count", i64::try_from(n).unwrap_or(i64::MAX)),
        }
    }
    /// From the stored parts.
    pub fn from_parts(kind: &str, value: i64) -> Option<Rollout> {
        match kind {
            "full" => Some(Rollout::Full),
            "percent" => u8::try_from(value)
                .ok()
                .filter(|p| *p <= 100)
                .map(Rollout::Percent),
            "count" => u64::try_from(value).ok().map(Rollout::Count),
            _ => None,
        }
    }
}

/// What a deployment does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentAction {
    /// The component must be installed (latest ready manifest).
    Install,
    /// The component must be removed.
    Remove,
}

/// Deployment lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentState {
    /// Being rolled out.
    Active,
    /// Paused: no new device gets it.
    Paused,
    /// Aborted for good.
    Aborted,
}

impl DeploymentState {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Active => "active",
            DeploymentState::Paused => "paused",
            DeploymentState::Aborted => "aborted",
        }
    }
    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<DeploymentState> {
        match s {
            "active" => Some(DeploymentState::Active),
            "paused" => Some(DeploymentState::Paused),
            "aborted" => Some(DeploymentState::Aborted),
            _ => None,
        }
    }
}

/// "This component must be on (or off) this set of devices."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRecord {
    /// Id (assigned by the store).
    pub id: i64,
    /// Owning SP.
    pub sp_id: String,
    /// Component id (encoded).
    pub component: Vec<u8>,
    /// Install or remove.
    pub action: DeploymentAction,
    /// Targeted devices.
    pub target: Target,
    /// Staging.
    pub rollout: Rollout,
    /// Lifecycle.
    pub state: DeploymentState,
    /// Creation time.
    pub created_at: u64,
}

/// Per-device progress of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressState {
    /// An Update was sent, no answer yet.
    Sent,
    /// The device reported Success.
    Done,
    /// The device reported an Error.
    Failed,
}

impl ProgressState {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ProgressState::Sent => "sent",
            ProgressState::Done => "done",
            ProgressState::Failed => "failed",
        }
    }
    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<ProgressState> {
        match s {
            "sent" => Some(ProgressState::Sent),
            "done" => Some(ProgressState::Done),
            "failed" => Some(ProgressState::Failed),
            _ => None,
        }
    }
}

/// Progress of one deployment on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressRecord {
    /// Deployment id (0: component requested by the device itself).
    pub deployment_id: i64,
    /// Device id.
    pub device_id: String,
    /// Component id (encoded).
    pub component: Vec<u8>,
    /// Sequence number sent or installed.
    pub seq: u64,
    /// State.
    pub state: ProgressState,
    /// Error or report detail.
    pub detail: String,
    /// Last change.
    pub updated_at: u64,
}

/// One active deployment as planning an Update reads it ([`crate::Store::deployment_plans`]):
/// the deployment, the device's progress in it, and (installs only) the component's
/// latest `Ready` manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentPlan {
    /// The deployment (state `Active`).
    pub deployment: DeploymentRecord,
    /// The device's progress row of (deployment, device, component), if any.
    pub progress: Option<ProgressRecord>,
    /// For an install: the component's `Ready` manifest with the highest sequence number.
    pub latest_ready: Option<ManifestRecord>,
}

/// Progress counts of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgressCounts {
    /// Updates sent, not answered.
    pub sent: u64,
    /// Installed (or removed).
    pub done: u64,
    /// Failed.
    pub failed: u64,
}

/// One admin action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Id (assigned by the store; 0 when appending).
    pub id: i64,
    /// When.
    pub at: u64,
    /// Account id that acted.
    pub actor: String,
    /// Action name (`component.register`, `deployment.pause`, …).
    pub action: String,
    /// Object acted on.
    pub object: String,
    /// Outcome / detail.
    pub detail: String,
}

/// The OTrP state of a device as the TAM last saw it (its last DSI and `dsihash`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtrpDeviceRecord {
    /// Device id (as in [`DeviceRecord::id`]).
    pub device_id: String,
    /// OTrP `did` (BASE64 SHA-256 of the TEE certificate).
    pub did: String,
    /// TEE routing name from the DSI.
    pub tee_name: String,
    /// TEE certificate (DER), the key its responses are verified with.
    pub tee_cert: Vec<u8>,
    /// The last DSI reported to this TAM (JSON, without `tfwdata`).
    pub dsi: String,
    /// Its `dsihash`, which the next request must carry.
    pub dsihash: String,
    /// The transaction id of the last GetDeviceState.
    pub tid: String,
    /// When this was recorded.
    pub updated_at: u64,
}

/// An OTrP request in flight: its `rid` is one-time (consumed by the answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtrpRequestRecord {
    /// The request id.
    pub rid: String,
    /// The device (None for a GetDeviceState sent before the device is known).
    pub device_id: Option<String>,
    /// The transaction id.
    pub tid: String,
    /// The command (`GetDeviceState`, `CreateSD`, …).
    pub kind: String,
    /// What it carried (for deployment progress).
    pub sent: Vec<SentItem>,
    /// When it was sent.
    pub created_at: u64,
    /// When it expires.
    pub expires_at: u64,
    /// When the answer consumed it.
    pub consumed_at: Option<u64>,
}

/// An SP's TA-signer certificate (the OTrP `spcert` of its SDs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpCertRecord {
    /// The SP account.
    pub sp_id: String,
    /// Certificate (DER).
    pub cert: Vec<u8>,
    /// When it was registered.
    pub created_at: u64,
}

/// The verifier's reference values of one device model (the OEM's appraisal policy),
/// shared by every TAM replica on the store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReferenceValuesRecord {
    /// Model name (EAT `hwmodel`).
    pub model: String,
    /// Accepted TEE measurements (raw digests); empty accepts any.
    pub measurements: Vec<Vec<u8>>,
    /// Accepted hardware versions; empty accepts any.
    pub hwversions: Vec<String>,
    /// A tombstone: the OEM removed the model (devices of it are refused unless the TAM
    /// accepts unlisted models); kept so a replica's config does not seed it again.
    pub removed: bool,
    /// Last change (Unix seconds).
    pub updated_at: u64,
    /// Who made it (an account id, or `config` when seeded from a TAM's config file).
    pub updated_by: String,
}
