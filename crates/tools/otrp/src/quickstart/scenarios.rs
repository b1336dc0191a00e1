//! The quickstart's scenarios, each against the real TAM server.

use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use otrp_crypto::SigAlg;
use otrp_pki::device::MgmtConfig;
use otrp_suit::ComponentId;
use reqwest::StatusCode;

use super::{step, wasm, Harness, Row, Tam};

/// Plays every scenario in order, pushing a row per scenario; stops at the first failure.
pub(crate) async fn all(h: &mut Harness, tam: &Tam, rows: &mut Vec<Row>) -> Result<()> {
    run_one(rows, "1. Payment", payment(h, tam)).await?;
    Ok(())
}

async fn run_one(
    rows: &mut Vec<Row>,
    scenario: &'static str,
    f: impl std::future::Future<Output = Result<(usize, String)>>,
) -> Result<()> {
    println!();
    println!("{scenario}");
    let t0 = Instant::now();
    match f.await {
        Ok((devices, result)) => {
            rows.push(Row {
                scenario,
                devices,
                result,
                time: t0.elapsed(),
            });
            Ok(())
        }
        Err(e) => {
            rows.push(Row {
                scenario,
                devices: 0,
                result: "FAILED".into(),
                time: t0.elapsed(),
            });
            Err(e.context(scenario))
        }
    }
}

fn component(sd: &str, name: &str) -> ComponentId {
    ComponentId(vec![sd.as_bytes().to_vec(), name.as_bytes().to_vec()])
}

/// 1. Payment: publish, RequestTA, install over HTTPS, sign, check the signature.
async fn payment(h: &mut Harness, tam: &Tam) -> Result<(usize, String)> {
    let sp = h.sp_account(tam, "payco", true).await?;
    h.grant_sd(tam, "payments", "payco").await?;
    step("The OEM opened an account for the payment SP `payco`, approved it and granted it the Security Domain `payments`.");
    let image = wasm("payment-signer")?;
    let env = h.sign_ta("payments/payment-signer", 1, &image)?;
    let (st, v) = h.upload(tam, &sp, &env, "payment-signer").await?;
    if st != StatusCode::CREATED {
        bail!("uploading payment-signer: the TAM answered {st}: {v}");
    }
    step(format!(
        "payco signed the payment-signer TA ({} bytes) on its own machine and uploaded only the signed SUIT envelope; the TAM checked the signature against the SD's signers.",
        image.len()
    ));
    h.deploy(tam, &sp, "payments/sd", "model:phone", "full")
        .await?;
    let phones = 3;
    let fleet = h.provision(phones, "phone", MgmtConfig::OemGated)?;
    step(format!(
        "Provisioned {phones} phones (TEE identity from the PKI, Broker trusting only the TAM root); payco asked the TAM to create its SD on them."
    ));
    for d in fleet.devices() {
        d.request_ta(component("payments", "payment-signer"));
    }
    step("The payment app on each phone asked its Broker for the payment-signer TA (RequestTA).");
    let s = h
        .converge(&fleet, tam, "payment: RequestTA")
        .await
        .context("phones fetching the TA")?;
    step(format!(
        "Each phone's Broker ran a TEEP session over HTTPS: the TAM attested the TEE and sent the TA; {} component(s) installed in {} session(s).",
        s.installed, s.sessions
    ));
    let tx = br#"{"from":"alice","to":"bob","amount":"42.00","currency":"EUR"}"#;
    let provider = otrp_crypto::default_provider();
    for (i, d) in fleet.devices().iter().enumerate() {
        let key = d
            .ta_public_key("payment-signer")
            .with_context(|| format!("phone {i}: the TA's key"))?;
        let sig = d
            .invoke("payment-signer", 2, tx)
            .with_context(|| format!("phone {i}: signing"))?;
        provider
            .verify(SigAlg::P256Sha256, &key, tx, &sig)
            .map_err(|e| {
                anyhow!("phone {i}: the signature does not verify under the TA's key: {e}")
            })?;
        let tampered = br#"{"from":"alice","to":"bob","amount":"4200.00","currency":"EUR"}"#;
        if provider
            .verify(SigAlg::P256Sha256, &key, tampered, &sig)
            .is_ok()
        {
            bail!("phone {i}: the signature also verifies a different transaction");
        }
    }
    step(format!(
        "On every phone the app had the TA sign a 42.00 EUR transaction; each signature verifies under the TA key the TEE reports (and not for an altered amount)."
    ));
    Ok((phones, format!("{phones}/{phones} phones signed, verified")))
}
