//! The OTrP (JSON/JOSE) profile of the simulated TEE: ProcessOtrpMessage runs
//! [`otrp_agent::Agent::handle_otrp`] with an [`OtrpAgent`] built from the device identity
//! on the same sealed component store as TEEP, so a TA installed over OTrP runs like one
//! installed over TEEP.
//!
//! The [`OtrpAgent`] is built at the first OTrP message:
//! * trusted TAMs: the TAM certificates given at boot ([`super::TeeOptions::tams`]),
//!   validated against the TAM roots sealed at provisioning; each must carry a `tamid`
//!   (SAN URI `urn:otrp:tamid:<id>`), the key is the TAM's JWS key (and the key responses
//!   are encrypted to);
//! * the TEE key and certificate chain (signs responses, decrypts `content`), the TFW key
//!   and certificate chain (signs the `tid` of GetDeviceState, `tfwdata`);
//! * the OEM keys, the management configuration and the SUIT processor configuration of
//!   the TEEP Agent.

use otrp_agent::otrp::{OtrpAgent, OtrpConfig, OtrpTam, TfwKey};
use otrp_pki::Usage;

use super::{Tee, TeepReply};
use crate::TeeError;

/// Name the TEE reports as its `tee` routing name (DSI `tee.name`).
pub const OTRP_TEE_NAME: &str = "OpenTrust-Sim";

/// `rid`s remembered per TAM against replay.
const OTRP_MAX_RIDS: usize = 64;

impl Tee {
    pub(super) fn build_otrp(&self) -> Result<OtrpAgent, TeeError> {
        let tam_store = self
            .identity
            .anchors
            .tam_store()
            .map_err(|e| TeeError::Identity(format!("sealed TAM roots: {e}")))?;
        let now = std::time::SystemTime::now();
        let mut tams = Vec::with_capacity(self.tam_certs.len());
        for (i, cert) in self.tam_certs.iter().enumerate() {
            let tam_err = |detail: String| TeeError::TamCert {
                what: format!("#{i}"),
                detail,
            };
            let (leaf, rest) = cert
                .chain
                .split_first()
                .ok_or_else(|| tam_err("empty chain".into()))?;
            let v = tam_store
                .verify(leaf, rest, Usage::TamSigner, now)
                .map_err(|e| tam_err(e.to_string()))?;
            let tamid = v.info.tamid.clone().ok_or_else(|| {
                tam_err("no tamid (SAN URI urn:otrp:tamid:<id>): OTrP needs it".into())
            })?;
            tams.push(OtrpTam {
                key: v.public_key,
                tamid,
                oem: cert.oem,
            });
        }
        let agent = self.agent.config();
        let id = &self.identity;
        Ok(OtrpAgent::new(
            self.provider,
            OtrpConfig {
                tams,
                oem_keys: agent.oem_keys.clone(),
                management: agent.management,
                tee_key: id.tee.key.clone(),
                tee_cert: id.tee.cert.clone(),
                tee_cacerts: id.tee.chain.clone(),
                tee_name: OTRP_TEE_NAME.into(),
                tee_version: env!("CARGO_PKG_VERSION").into(),
                tfw: Some(TfwKey {
                    key: id.tfw.key.clone(),
                    cert: id.tfw.cert.clone(),
                    chain: id.tfw.chain.clone(),
                }),
                legacy: otrp_json::LegacyMode::Deny,
                max_rids: OTRP_MAX_RIDS,
                processor: agent.processor.clone(),
            },
        ))
    }

    /// ProcessOtrpMessage: an OTrP request from the TAM (`application/otrp+json`),
    /// untouched. The reply's `send` is the TEE-signed response to relay (a bare
    /// `GetDeviceTEEStateResponse` for GetDeviceState: the Broker wraps it in the
    /// `GetDeviceStateResponse` array); nothing to send means the input was not a signed
    /// OTrP request at all (see the `refused` event).
    pub fn process_otrp_message(
        &mut self,
        message: &[u8],
        now: u64,
    ) -> Result<TeepReply, TeeError> {
        if self.otrp.is_none() {
            self.otrp = Some(self.build_otrp()?);
        }
        let Some(otrp) = self.otrp.as_ref() else {
            return Err(TeeError::Identity("OTrP Agent unavailable".into()));
        };
        let mut rng = rand::rngs::OsRng;
        let out = self.agent.handle_otrp(otrp, message, now, &mut rng);
        Ok(TeepReply {
            send: out.send,
            events: super::otrp_batch::tee_events(out.events),
            ..TeepReply::default()
        })
    }
}
