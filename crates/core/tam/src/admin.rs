//! Tenancy and the catalog (issue #5 items 4 and 5, the store side): accounts with hashed
//! API tokens, OEM approval of SPs, SD grants, component registration (SUIT signature and
//! SD authorization checked, sequence numbers growing), the dual-control co-signing
//! workflow as manifest state, deployments with staged rollout, and an audit entry for
//! every admin action (refusals included).
//!
//! Rules: an SP sees and changes only its own components, SDs and deployments; the OEM
//! sees everything. Under [`Policy::OemGated`] an approved SP creates its SDs itself;
//! under [`Policy::OemOwnedSd`] only the OEM creates (grants) SDs; under
//! [`Policy::DualControl`] new manifests wait for the OEM's co-signature.
//!
//! API tokens are 32 random bytes (hex); the store keeps only their SHA-256 (a fast hash
//! is right for high-entropy secrets).

use std::sync::Arc;

use otrp_crypto::{CryptoProvider, PublicKey};
use otrp_store::{
    AccountKind, AccountRecord, AuditRecord, ComponentRecord, DeploymentAction, DeploymentRecord,
    DeploymentState, ManifestRecord, ManifestStatus, ProgressCounts, Rollout, SdRecord, Store,
    StoreError, Target,
};
use otrp_suit::Envelope;
use rand_core::CryptoRngCore;

use crate::component_key;

/// The TAM's management configuration (`DESIGN.md` §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// An OEM-approved SP creates SDs and manages TAs without the OEM.
    OemGated,
    /// Only the OEM creates SDs; approved SPs manage TAs in SDs granted to them.
    OemOwnedSd,
    /// Every manifest needs the OEM's co-signature before it is delivered.
    DualControl,
}

/// An authenticated admin-API caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The account.
    pub account: AccountRecord,
}

impl Caller {
    fn is_oem(&self) -> bool {
        self.account.kind == AccountKind::Oem
    }
    fn id(&self) -> &str {
        &self.account.id
    }
}

/// Admin refusals.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The API token matches no account.
    #[error("unknown API token")]
    Unauthenticated,
    /// The caller may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The SP has not been approved by the OEM.
    #[error("SP {0} is not approved by the OEM")]
    NotApproved(String),
    /// The object does not exist (or belongs to another tenant: same answer).
    #[error("{0} not found")]
    NotFound(String),
    /// The envelope is malformed or its signature does not verify.
    #[error("SUIT envelope refused: {0}")]
    Envelope(String),
    /// Bad input.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The store refused (e.g. sequence number not growing).
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// What [`Admin::register_manifest`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// Component key.
    pub component: Vec<u8>,
    /// Sequence number.
    pub seq: u64,
    /// Ready, or awaiting the OEM's co-signature.
    pub status: ManifestStatus,
}

/// The admin side of the TAM core.
pub struct Admin {
    store: Arc<dyn Store>,
    provider: &'static dyn CryptoProvider,
    policy: Policy,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The image digest (encoded SUIT_Digest) a manifest sets: in its shared sequence, or in
/// its install sequence (compact profile), see [`Envelope::image_digest`].
fn image_digest(env: &Envelope) -> Option<Vec<u8>> {
    env.image_digest().map(|d| d.bytes().to_vec())
}

impl Admin {
    /// The admin side over `store` under `policy`.
    pub fn new(
        store: Arc<dyn Store>,
        provider: &'static dyn CryptoProvider,
        policy: Policy,
    ) -> Self {
        Admin {
            store,
            provider,
            policy,
        }
    }

    async fn audit(&self, now: u64, actor: &str, action: &str, object: &str, detail: &str) {
        // The audit write failing must not hide the action's own outcome; it is retried
        // by nobody, so report it through the detail of the next entry instead of failing.
        let _ = self
            .store
            .append_audit(&AuditRecord {
                id: 0,
                at: now,
                actor: actor.into(),
                action: action.into(),
                object: object.into(),
                detail: detail.into(),
            })
            .await;
    }

    async fn audited<T>(
        &self,
        now: u64,
        caller: &Caller,
        action: &str,
        object: &str,
        r: Result<T, AdminError>,
    ) -> Result<T, AdminError> {
        let detail = match &r {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("refused: {e}"),
        };
        self.audit(now, caller.id(), action, object, &detail).await;
        r
    }

    fn hash(&self, token: &str) -> Vec<u8> {
        self.provider.sha256(token.as_bytes()).to_vec()
    }

    /// Creates an account and returns its API token (shown once). The first account of a
    /// TAM must be the OEM and needs no caller (bootstrap); later ones are made by the OEM.
    pub async fn create_account(
        &self,
        caller: Option<&Caller>,
        id: &str,
        kind: AccountKind,
        now: u64,
        rng: &mut (impl CryptoRngCore + Send),
    ) -> Result<String, AdminError> {
        let bootstrap = self.store.accounts().await?.is_empty();
        let actor = caller.map_or("bootstrap", Caller::id).to_owned();
        let r = async {
            match caller {
                Some(c) if c.is_oem() => {}
                None if bootstrap && kind == AccountKind::Oem => {}
                _ => {
                    return Err(AdminError::Forbidden(
                        "only the OEM creates accounts".into(),
                    ))
                }
            }
            if id.is_empty() || id.len() > 64 || id.chars().any(char::is_control) {
                return Err(AdminError::Invalid(format!("account id {id:?}")));
            }
            let mut raw = [0u8; 32];
            rng.fill_bytes(&mut raw);
            let token = hex::encode(raw);
            self.store
                .insert_account(&AccountRecord {
                    id: id.into(),
                    kind,
                    token_hash: self.hash(&token),
                    approved: kind != AccountKind::Sp,
                    created_at: now,
                })
                .await?;
            Ok(token)
        }
        .await;
        let detail = match &r {
            Ok(_) => format!("ok ({})", kind.as_str()),
            Err(e) => format!("refused: {e}"),
        };
        self.audit(now, &actor, "account.create", id, &detail).await;
        r
    }

    /// Resolves an API token.
    pub async fn authenticate(&self, api_token: &str) -> Result<Caller, AdminError> {
        self.store
            .account_by_token_hash(&self.hash(api_token))
            .await?
            .map(|account| Caller { account })
            .ok_or(AdminError::Unauthenticated)
    }

    /// The OEM approves (or withdraws approval of) an SP.
    pub async fn approve_sp(
        &self,
        caller: &Caller,
        sp_id: &str,
        approved: bool,
        now: u64,
    ) -> Result<(), AdminError> {
        let r = async {
            if !caller.is_oem() {
                return Err(AdminError::Forbidden("only the OEM approves SPs".into()));
            }
            match self.store.account(sp_id).await? {
                Some(a) if a.kind == AccountKind::Sp => {}
                _ => return Err(AdminError::NotFound(format!("SP {sp_id}"))),
            }
            Ok(self.store.set_account_approved(sp_id, approved).await?)
        }
        .await;
        let action = if approved {
            "sp.approve"
        } else {
            "sp.unapprove"
        };
        self.audited(now, caller, action, sp_id, r).await
    }

    fn require_approved_sp(&self, caller: &Caller) -> Result<(), AdminError> {
        if caller.account.kind != AccountKind::Sp {
            return Err(AdminError::Forbidden("only SPs do this".into()));
        }
        if !caller.account.approved {
            return Err(AdminError::NotApproved(caller.id().into()));
        }
        Ok(())
    }

    /// Creates an SD for `sp_id`: the OEM may always (a grant); an approved SP may for
    /// itself under OEM-gated and dual-control policy.
    pub async fn create_sd(
        &self,
        caller: &Caller,
        name: &str,
        sp_id: &str,
        now: u64,
    ) -> Result<SdRecord, AdminError> {
        let r = async {
            if !caller.is_oem() {
                self.require_approved_sp(caller)?;
                if caller.id() != sp_id {
                    return Err(AdminError::Forbidden(
                        "an SP creates SDs for itself only".into(),
                    ));
                }
                if self.policy == Policy::OemOwnedSd {
                    return Err(AdminError::Forbidden(
                        "under the OEM-owned-SD policy only the OEM creates SDs".into(),
                    ));
                }
            }
            let sd = SdRecord {
                name: name.into(),
                sp_id: sp_id.into(),
                granted: true,
                created_at: now,
            };
            self.store.insert_sd(&sd).await?;
            Ok(sd)
        }
        .await;
        self.audited(now, caller, "sd.create", name, r).await
    }

    /// SDs the caller may see.
    pub async fn sds(&self, caller: &Caller) -> Result<Vec<SdRecord>, AdminError> {
        let filter = (!caller.is_oem()).then(|| caller.id());
        Ok(self.store.sds(filter).await?)
    }

    /// Registers a signed SUIT envelope: the caller must be an approved SP owning the
    /// (granted) SD; the envelope must verify with one of `sp_keys` (the SP's TA-signing
    /// keys); its component must be new or the caller's; its sequence number must grow.
    /// Under dual control the manifest then waits for [`Admin::cosign_manifest`].
    pub async fn register_manifest(
        &self,
        caller: &Caller,
        sd_name: &str,
        name: &str,
        envelope: &[u8],
        sp_keys: &[PublicKey],
        now: u64,
    ) -> Result<Registered, AdminError> {
        let r = async {
            self.require_approved_sp(caller)?;
            let sd = self
                .store
                .sd(sd_name)
                .await?
                .filter(|sd| sd.sp_id == caller.id())
                .ok_or_else(|| AdminError::NotFound(format!("SD {sd_name}")))?;
            if !sd.granted {
                return Err(AdminError::Forbidden(format!(
                    "SD {sd_name} is not granted"
                )));
            }
            let env =
                Envelope::decode(envelope).map_err(|e| AdminError::Envelope(e.to_string()))?;
            env.verify(self.provider, sp_keys)
                .map_err(|e| AdminError::Envelope(e.to_string()))?;
            let comp_id = env
                .manifest()
                .components()
                .first()
                .ok_or_else(|| AdminError::Envelope("manifest names no component".into()))?;
            let key = component_key(comp_id.segments());
            match self.store.component(&key).await? {
                Some(c) if c.sp_id != caller.id() => {
                    return Err(AdminError::Forbidden(
                        "the component belongs to another SP".into(),
                    ))
                }
                Some(_) => {}
                None => {
                    self.store
                        .insert_component(&ComponentRecord {
                            id: key.clone(),
                            sp_id: caller.id().into(),
                            sd_name: sd_name.into(),
                            name: name.into(),
                            created_at: now,
                        })
                        .await?
                }
            }
            let status = if self.policy == Policy::DualControl {
                ManifestStatus::AwaitingCosign
            } else {
                ManifestStatus::Ready
            };
            let seq = env.manifest().sequence_number;
            self.store
                .add_manifest(&ManifestRecord {
                    component: key.clone(),
                    seq,
                    envelope: envelope.to_vec(),
                    image_digest: image_digest(&env),
                    status,
                    created_at: now,
                })
                .await?;
            Ok(Registered {
                component: key,
                seq,
                status,
            })
        }
        .await;
        self.audited(now, caller, "manifest.register", name, r)
            .await
    }

    /// The OEM co-signs a manifest waiting under dual control: `envelope` must be the same
    /// manifest carrying a signature that verifies with one of `oem_keys` (the SP's stays).
    pub async fn cosign_manifest(
        &self,
        caller: &Caller,
        component: &[u8],
        seq: u64,
        envelope: &[u8],
        oem_keys: &[PublicKey],
        now: u64,
    ) -> Result<(), AdminError> {
        let object = format!("{}#{seq}", hex::encode(component));
        let r = async {
            if !caller.is_oem() {
                return Err(AdminError::Forbidden("only the OEM co-signs".into()));
            }
            let m = self
                .store
                .manifest(component, seq)
                .await?
                .ok_or_else(|| AdminError::NotFound(format!("manifest {object}")))?;
            if m.status != ManifestStatus::AwaitingCosign {
                return Err(AdminError::Invalid(
                    "the manifest is not awaiting co-signature".into(),
                ));
            }
            let old =
                Envelope::decode(&m.envelope).map_err(|e| AdminError::Envelope(e.to_string()))?;
            let new =
                Envelope::decode(envelope).map_err(|e| AdminError::Envelope(e.to_string()))?;
            if old.manifest_wrapped_bytes() != new.manifest_wrapped_bytes() {
                return Err(AdminError::Envelope(
                    "the co-signed envelope holds another manifest".into(),
                ));
            }
            new.verify(self.provider, oem_keys)
                .map_err(|e| AdminError::Envelope(format!("no OEM signature: {e}")))?;
            Ok(self
                .store
                .update_manifest(component, seq, envelope, ManifestStatus::Ready)
                .await?)
        }
        .await;
        self.audited(now, caller, "manifest.cosign", &object, r)
            .await
    }

    /// Components the caller may see (an SP: its own).
    pub async fn components(&self, caller: &Caller) -> Result<Vec<ComponentRecord>, AdminError> {
        let filter = (!caller.is_oem()).then(|| caller.id());
        Ok(self.store.components(filter).await?)
    }

    async fn owned_component(
        &self,
        caller: &Caller,
        component: &[u8],
    ) -> Result<ComponentRecord, AdminError> {
        self.store
            .component(component)
            .await?
            .filter(|c| caller.is_oem() || c.sp_id == caller.id())
            .ok_or_else(|| AdminError::NotFound(format!("component {}", hex::encode(component))))
    }

    /// One component, if the caller may see it.
    pub async fn component(
        &self,
        caller: &Caller,
        component: &[u8],
    ) -> Result<ComponentRecord, AdminError> {
        self.owned_component(caller, component).await
    }

    /// Creates a deployment of the caller's component.
    pub async fn create_deployment(
        &self,
        caller: &Caller,
        component: &[u8],
        action: DeploymentAction,
        target: Target,
        rollout: Rollout,
        now: u64,
    ) -> Result<i64, AdminError> {
        let r = async {
            let c = self.owned_component(caller, component).await?;
            if !caller.is_oem() {
                self.require_approved_sp(caller)?;
            }
            Ok(self
                .store
                .insert_deployment(&DeploymentRecord {
                    id: 0,
                    sp_id: c.sp_id,
                    component: component.to_vec(),
                    action,
                    target,
                    rollout,
                    state: DeploymentState::Active,
                    created_at: now,
                })
                .await?)
        }
        .await;
        self.audited(now, caller, "deployment.create", &hex::encode(component), r)
            .await
    }

    async fn owned_deployment(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<DeploymentRecord, AdminError> {
        self.store
            .deployment(id)
            .await?
            .filter(|d| caller.is_oem() || d.sp_id == caller.id())
            .ok_or_else(|| AdminError::NotFound(format!("deployment {id}")))
    }

    /// Pauses, resumes or aborts a deployment (an aborted one stays aborted).
    pub async fn set_deployment_state(
        &self,
        caller: &Caller,
        id: i64,
        state: DeploymentState,
        now: u64,
    ) -> Result<(), AdminError> {
        let r = async {
            let d = self.owned_deployment(caller, id).await?;
            if d.state == DeploymentState::Aborted {
                return Err(AdminError::Invalid("the deployment was aborted".into()));
            }
            Ok(self.store.set_deployment_state(id, state).await?)
        }
        .await;
        let action = format!("deployment.{}", state.as_str());
        self.audited(now, caller, &action, &id.to_string(), r).await
    }

    /// Deployments the caller may see.
    pub async fn deployments(&self, caller: &Caller) -> Result<Vec<DeploymentRecord>, AdminError> {
        let filter = (!caller.is_oem()).then(|| caller.id());
        Ok(self.store.deployments(filter).await?)
    }

    /// Progress of a deployment: (targeted devices, counts).
    pub async fn deployment_progress(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<(u64, ProgressCounts), AdminError> {
        let d = self.owned_deployment(caller, id).await?;
        let targeted = self
            .store
            .devices()
            .await?
            .iter()
            .filter(|dev| d.target.matches(dev))
            .count() as u64;
        Ok((targeted, self.store.progress_counts(id).await?))
    }
}
