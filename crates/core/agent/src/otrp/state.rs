//! What the OTrP Agent keeps in the component store's state entries (committed in the
//! same atomic `commit` as the components they describe).
//!
//! * `otrp/sd/<hex name>`: an [`OtrpSd`] (JSON).
//! * `otrp/aik/<hex spid>`: the TEE SP AIK of an SP (P-256 private scalar, 32 bytes).
//! * `otrp/tam/<hex tamid>`: the [`TamSession`] of one TAM (its current `tid` and the
//!   `rid`s it already used).
//! * `oem-auth/<hex spid>`: recorded OEM authorizations, shared with the TEEP profile.

use alloc::string::String;
use alloc::vec::Vec;

use otrp_suit::ComponentId;
use serde::{Deserialize, Serialize};

/// State key prefix of OTrP SDs.
pub const SD_PREFIX: &str = "otrp/sd/";
/// State key prefix of TEE SP AIKs.
pub const AIK_PREFIX: &str = "otrp/aik/";
/// State key prefix of per-TAM sessions.
pub const TAM_PREFIX: &str = "otrp/tam/";
/// Last component-id segment of a TA's personalization data: `[sdname, taid, "pdata"]`.
pub const PDATA_SEGMENT: &[u8] = b"pdata";

/// `otrp/sd/<hex name>`.
pub fn sd_key(name: &str) -> String {
    let mut k = String::from(SD_PREFIX);
    k.push_str(&hex::encode(name.as_bytes()));
    k
}

/// `otrp/aik/<hex spid>`.
pub fn aik_key(spid: &str) -> String {
    let mut k = String::from(AIK_PREFIX);
    k.push_str(&hex::encode(spid.as_bytes()));
    k
}

/// `otrp/tam/<hex tamid>`.
pub fn tam_key(tamid: &str) -> String {
    let mut k = String::from(TAM_PREFIX);
    k.push_str(&hex::encode(tamid.as_bytes()));
    k
}

/// The component (and manifest) id of TA `taid` in SD `sdname`: `[sdname, taid]`.
pub fn ta_component(sdname: &str, taid: &str) -> ComponentId {
    ComponentId(alloc::vec![
        sdname.as_bytes().to_vec(),
        taid.as_bytes().to_vec()
    ])
}

/// The component holding the personalization data of a TA: `[sdname, taid, "pdata"]`.
pub fn pdata_component(sdname: &str, taid: &str) -> ComponentId {
    ComponentId(alloc::vec![
        sdname.as_bytes().to_vec(),
        taid.as_bytes().to_vec(),
        PDATA_SEGMENT.to_vec()
    ])
}

/// An OTrP Security Domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtrpSd {
    /// SD name (first segment of its TAs' component ids).
    pub name: String,
    /// The SP it belongs to.
    pub spid: String,
    /// The owning TAM (`tamid`).
    pub tamid: String,
    /// Authorized SP TA-signer certificates, standard BASE64 DER.
    pub spcerts: Vec<String>,
    /// Installed TAs (`taid`s).
    pub tas: Vec<String>,
}

/// The Agent's view of one TAM's transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TamSession {
    /// The `tid` of the TAM's last GetDeviceState: every later command must carry it.
    pub tid: Option<String>,
    /// The `rid`s already answered (bounded, oldest first).
    pub rids: Vec<String>,
}
