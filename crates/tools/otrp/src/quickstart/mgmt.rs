//! Scenario 4: one device model under each management configuration, each on its own
//! TAM (the configuration is a TAM-wide policy), with one refused and one allowed
//! operation each.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use otrp_pki::device::MgmtConfig;
use otrp_tam_server::config::PolicyConfig;
use reqwest::StatusCode;
use serde_json::json;

use super::scenarios::count_with;
use super::{step, wasm, Harness};

fn why(v: &serde_json::Value) -> String {
    v["error"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string())
}

/// Plays the three configurations.
pub(crate) async fn configurations(h: &mut Harness) -> Result<(usize, String)> {
    let per = h.count(2, 1);
    let image = wasm("smart-lock")?;
    let mut devices = 0;

    // OEM-gated.
    let tam = h.start_tam(PolicyConfig::OemGated).await?;
    let fleet = h.provision(per, "gated-tablet", MgmtConfig::OemGated)?;
    devices += per;
    let sp = h.sp_account(&tam, "newco", false).await?;
    h.grant_sd(&tam, "newco", "newco").await?;
    let env = h.sign_ta("newco/app", 1, &image)?;
    let (st, v) = h.upload(&tam, &sp, &env, "app").await?;
    if st.is_success() {
        bail!("OEM-gated: the TAM accepted an upload from an unapproved SP");
    }
    step(format!(
        "OEM-gated (TAM at {}): SP `newco`, not yet approved by the OEM, uploads a TA: refused ({st}: {}).",
        tam.base,
        why(&v)
    ));
    h.post_ok(
        &tam,
        "/api/v1/sps/newco/approve",
        &tam.oem,
        json!({}),
        StatusCode::OK,
    )
    .await?;
    let (st, v) = h.upload(&tam, &sp, &env, "app").await?;
    if st != StatusCode::CREATED {
        bail!("OEM-gated: upload after approval: {st}: {v}");
    }
    h.deploy(&tam, &sp, "newco/app", "model:gated-tablet", "full")
        .await?;
    h.converge(&fleet, &tam, "OEM-gated rollout").await?;
    let got = count_with(&fleet, "newco:app", &image)?;
    if got != per {
        bail!("OEM-gated: the TA reached {got} of {per} tablets");
    }
    step(format!(
        "OEM-gated: after the OEM approved `newco` once, the same upload is accepted and {got}/{per} tablets install the TA."
    ));

    // OEM-owned SDs.
    let tam = h.start_tam(PolicyConfig::OemOwnedSd).await?;
    let fleet = h.provision(per, "oem-sd-kiosk", MgmtConfig::OemOwnedSd)?;
    devices += per;
    let sp = h.sp_account(&tam, "kioskco", true).await?;
    let (st, v) = h
        .call(
            &tam,
            reqwest::Method::POST,
            "/api/v1/sds",
            &sp,
            Some(json!({"name": "kiosk", "sp_id": "kioskco", "signer_chain_pem": h.sp_chain_pem})),
        )
        .await?;
    if st.is_success() {
        bail!("OEM-owned SDs: the TAM let an SP create its own SD");
    }
    step(format!(
        "OEM-owned SDs (TAM at {}): approved SP `kioskco` tries to create its own SD `kiosk`: refused ({st}: {}).",
        tam.base,
        why(&v)
    ));
    h.grant_sd(&tam, "kiosk", "kioskco").await?;
    let env = h.sign_ta("kiosk/app", 1, &image)?;
    let (st, v) = h.upload(&tam, &sp, &env, "app").await?;
    if st != StatusCode::CREATED {
        bail!("OEM-owned SDs: upload into the OEM's SD: {st}: {v}");
    }
    h.deploy(&tam, &sp, "kiosk/app", "model:oem-sd-kiosk", "full")
        .await?;
    h.converge(&fleet, &tam, "OEM-owned SD rollout").await?;
    let got = count_with(&fleet, "kiosk:app", &image)?;
    if got != per {
        bail!("OEM-owned SDs: the TA reached {got} of {per} kiosks");
    }
    step(format!(
        "OEM-owned SDs: the OEM creates `kiosk` for kioskco; kioskco's TA goes into it and {got}/{per} kiosks install it."
    ));

    // Dual control.
    let tam = h.start_tam(PolicyConfig::DualControl).await?;
    let fleet = h.provision(per, "dual-car", MgmtConfig::DualControl)?;
    devices += per;
    let sp = h.sp_account(&tam, "carco", true).await?;
    h.grant_sd(&tam, "car", "carco").await?;
    let env = h.sign_ta("car/app", 1, &image)?;
    let (st, v) = h.upload(&tam, &sp, &env, "app").await?;
    if st != StatusCode::CREATED {
        bail!("dual control: upload: {st}: {v}");
    }
    let status = v["status"].as_str().unwrap_or("?").to_owned();
    let key = v["component_key"]
        .as_str()
        .ok_or_else(|| anyhow!("upload answer without component_key: {v}"))?
        .to_owned();
    h.deploy(&tam, &sp, "car/app", "model:dual-car", "full")
        .await?;
    h.converge(&fleet, &tam, "dual control, SP only").await?;
    let got = count_with(&fleet, "car:app", &image)?;
    if got != 0 {
        bail!("dual control: a manifest without the OEM co-signature reached {got} car(s)");
    }
    step(format!(
        "Dual control (TAM at {}): carco's manifest, signed by the SP only, is `{status}`; after a TEEP session the cars hold nothing: not delivered without the OEM co-signature.",
        tam.base
    ));
    let mut e = otrp_suit::Envelope::decode(&env).map_err(|e| anyhow!("envelope: {e}"))?;
    let oem_key = h.pki.oem_key().context("OEM key")?;
    e.add_signature(
        otrp_crypto::default_provider(),
        &oem_key,
        &otrp_cose::SignOptions::default(),
    )
    .map_err(|e| anyhow!("co-signing: {e}"))?;
    let cosigned = e.encode().map_err(|e| anyhow!("envelope: {e}"))?;
    h.post_ok(
        &tam,
        &format!("/api/v1/components/{key}/cosign"),
        &tam.oem,
        json!({"seq": 1, "envelope": base64::engine::general_purpose::STANDARD.encode(&cosigned)}),
        StatusCode::OK,
    )
    .await?;
    h.converge(&fleet, &tam, "dual control, co-signed").await?;
    let got = count_with(&fleet, "car:app", &image)?;
    if got != per {
        bail!("dual control: the co-signed TA reached {got} of {per} cars");
    }
    step(format!(
        "Dual control: the OEM co-signed the same manifest (SP and OEM signatures); {got}/{per} cars install it."
    ));
    Ok((devices, "3 refused, 3 allowed as expected".into()))
}
