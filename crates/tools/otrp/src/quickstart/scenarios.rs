//! The quickstart's scenarios, each against the real TAM server.

use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use otrp_crypto::SigAlg;
use otrp_pki::device::MgmtConfig;
use otrp_suit::ComponentId;
use reqwest::StatusCode;

use otrp_fleet::{Fleet, FleetDevice};

use super::{step, wasm, Harness, Row, Tam};

/// Plays every scenario in order, pushing a row per scenario; stops at the first failure.
pub(crate) async fn all(h: &mut Harness, tam: &Tam, rows: &mut Vec<Row>) -> Result<()> {
    run_one(rows, "1. Payment", payment(h, tam)).await?;
    run_one(rows, "2. Smart locks", locks(h, tam)).await?;
    run_one(rows, "3. Drones", drones(h, tam)).await?;
    run_one(
        rows,
        "4. Management configs",
        super::mgmt::configurations(h),
    )
    .await?;
    run_one(rows, "5. Batch", batch(h, tam)).await?;
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

/// The image digest (hex) of component `id` (`sd:name`) on a device, if installed.
pub(crate) fn digest_on(d: &FleetDevice, id: &str) -> Result<Option<String>> {
    Ok(d.status()?
        .components
        .into_iter()
        .find(|c| c.id == id)
        .map(|c| c.digest))
}

/// How many devices of `fleet` hold `id` with image `image`.
pub(crate) fn count_with(fleet: &Fleet, id: &str, image: &[u8]) -> Result<usize> {
    let want = hex::encode(otrp_crypto::default_provider().sha256(image));
    let mut n = 0;
    for d in fleet.devices() {
        if digest_on(d, id)?.as_deref() == Some(want.as_str()) {
            n += 1;
        }
    }
    Ok(n)
}

/// `image` with a Wasm custom section `otrp-version` holding `version`: a new build of
/// the same TA (different digest, same behaviour).
fn rebuilt(image: &[u8], version: &str) -> Result<Vec<u8>> {
    let name = b"otrp-version";
    let body_len = 1 + name.len() + version.len();
    let (Ok(body), Ok(name_len)) = (u8::try_from(body_len), u8::try_from(name.len())) else {
        bail!("version string too long");
    };
    if body_len >= 0x80 {
        bail!("version string too long");
    }
    let mut out = image.to_vec();
    out.extend_from_slice(&[0x00, body, name_len]);
    out.extend_from_slice(name);
    out.extend_from_slice(version.as_bytes());
    Ok(out)
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
    let got = count_with(&fleet, "payments:payment-signer", &image)?;
    if got != phones {
        bail!("the payment-signer TA reached {got} of {phones} phones");
    }
    step(format!(
        "Each phone's Broker ran a TEEP session with the TAM over HTTPS ({} sessions): the TAM attested the TEE and sent the SD and the TA; {got}/{phones} phones run it.",
        s.sessions
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
    step("On every phone the app had the TA sign a 42.00 EUR transaction; each signature verifies under the TA key the TEE reports (and not for an altered amount).");
    Ok((phones, format!("{phones}/{phones} phones signed, verified")))
}

/// 2. Smart locks: v1 everywhere, v2 staged (10%, then all), one lock offline catches up.
async fn locks(h: &mut Harness, tam: &Tam) -> Result<(usize, String)> {
    let sp = h.sp_account(tam, "lockco", true).await?;
    h.grant_sd(tam, "locks", "lockco").await?;
    let n = h.count(100, 10);
    let fleet = h.provision(n, "smart-lock", MgmtConfig::OemGated)?;
    step(format!(
        "The lock vendor `lockco` got an approved account and the SD `locks`; {n} smart locks were provisioned."
    ));
    let v1 = wasm("smart-lock")?;
    let env = h.sign_ta("locks/smart-lock", 1, &v1)?;
    let (st, v) = h.upload(tam, &sp, &env, "smart-lock").await?;
    if st != StatusCode::CREATED {
        bail!("uploading smart-lock v1: the TAM answered {st}: {v}");
    }
    let d1 = h
        .deploy(tam, &sp, "locks/smart-lock", "model:smart-lock", "full")
        .await?;
    h.converge(&fleet, tam, "smart-lock v1 rollout").await?;
    let have = count_with(&fleet, "locks:smart-lock", &v1)?;
    if have != n {
        bail!("smart-lock v1 reached {have} of {n} locks");
    }
    let lock0 = fleet
        .device(0)
        .ok_or_else(|| anyhow!("no lock provisioned"))?;
    let tries = lock0
        .invoke("smart-lock", 3, b"")
        .context("asking the lock TA for its PIN tries")?;
    step(format!(
        "lockco published smart-lock v1 (seq 1) to every lock: {have}/{n} run it (lock #0 reports {} PIN tries left).",
        tries.first().copied().unwrap_or(0)
    ));

    let offline = fleet
        .device(n - 1)
        .ok_or_else(|| anyhow!("no last lock"))?
        .clone();
    offline.set_online(false);
    step(format!(
        "Lock {}… went offline (no network).",
        offline.ueid().get(..8).unwrap_or(offline.ueid())
    ));
    let v2 = rebuilt(&v1, "2")?;
    h.post_ok(
        tam,
        &format!("/api/v1/deployments/{d1}/abort"),
        &sp,
        serde_json::json!({}),
        StatusCode::OK,
    )
    .await?;
    let env = h.sign_ta("locks/smart-lock", 2, &v2)?;
    let (st, v) = h.upload(tam, &sp, &env, "smart-lock").await?;
    if st != StatusCode::CREATED {
        bail!("uploading smart-lock v2: the TAM answered {st}: {v}");
    }
    // 10% of the fleet, as an exact count (a `N%` rollout buckets devices by a hash,
    // which is only about N% on small fleets).
    let first = n.div_ceil(10);
    let d2 = h
        .deploy(
            tam,
            &sp,
            "locks/smart-lock",
            "model:smart-lock",
            &format!("count:{first}"),
        )
        .await?;
    // One session at a time: the TAM counts the locks of a `count:N` stage as it sends.
    let s = h
        .sessions_with(&fleet, tam, "smart-lock v2 stage 10%", 1)
        .await;
    if !s.all_converged() {
        bail!("smart-lock v2 stage 10%: not every lock converged: {s}");
    }
    let stage1 = count_with(&fleet, "locks:smart-lock", &v2)?;
    if stage1 != first {
        bail!("the 10% stage reached {stage1} locks instead of {first}");
    }
    let p = h
        .get_ok(tam, &format!("/api/v1/deployments/{d2}"), &sp)
        .await?;
    step(format!(
        "lockco signed smart-lock v2 (seq 2) and started a staged rollout, first stage 10%: {stage1} locks updated, {} still on v1 (TAM: {} targeted, {} done).",
        n - stage1,
        p["targeted"],
        p["done"]
    ));
    h.deploy(tam, &sp, "locks/smart-lock", "model:smart-lock", "full")
        .await?;
    let s = h.converge(&fleet, tam, "smart-lock v2 to all").await?;
    let stage2 = count_with(&fleet, "locks:smart-lock", &v2)?;
    if stage2 != n - 1 || s.offline != 1 {
        bail!(
            "after the full stage {stage2} of {n} locks run v2 ({} offline)",
            s.offline
        );
    }
    if digest_on(&offline, "locks:smart-lock")?
        != Some(hex::encode(otrp_crypto::default_provider().sha256(&v1)))
    {
        bail!("the offline lock changed while offline");
    }
    step(format!(
        "The rollout went to all locks: {stage2}/{n} run v2; the offline lock still runs v1."
    ));
    offline.set_online(true);
    h.converge(&fleet, tam, "offline lock catches up").await?;
    let all = count_with(&fleet, "locks:smart-lock", &v2)?;
    if all != n {
        bail!("after the offline lock came back, {all} of {n} locks run v2");
    }
    step(format!(
        "The offline lock came back, ran its next TEEP session and caught up: {all}/{n} locks run v2."
    ));
    Ok((
        n,
        format!("v2: {stage1} (10%), {stage2} (all online), {all}/{n}"),
    ))
}

fn point(lat: f64, lon: f64) -> Vec<u8> {
    let mut v = lat.to_le_bytes().to_vec();
    v.extend_from_slice(&lon.to_le_bytes());
    v
}

const ZONES_V1: &str = r#"{"version": 1, "zones": [
  {"name": "airport", "circle": {"lat": 48.3538, "lon": 11.7861, "radius_m": 5000}}
]}"#;

const ZONES_V2: &str = r#"{"version": 2, "zones": [
  {"name": "airport", "circle": {"lat": 48.3538, "lon": 11.7861, "radius_m": 5000}},
  {"name": "old town", "circle": {"lat": 48.1374, "lon": 11.5755, "radius_m": 1500}}
]}"#;

/// Whether every drone accepts (`Some(false)`) or refuses (`Some(true)`) the point.
fn all_refuse(fleet: &Fleet, lat: f64, lon: f64) -> Result<Option<bool>> {
    let mut refused = 0;
    for (i, d) in fleet.devices().iter().enumerate() {
        let out = d
            .invoke("geofence", 1, &point(lat, lon))
            .with_context(|| format!("drone {i}: geofence check"))?;
        if out.first() == Some(&1) {
            refused += 1;
        }
    }
    Ok(match refused {
        0 => Some(false),
        r if r == fleet.len() => Some(true),
        _ => None,
    })
}

/// 3. Drones: geofence TA, no-fly zones as personalization data, zones change.
async fn drones(h: &mut Harness, tam: &Tam) -> Result<(usize, String)> {
    let sp = h.sp_account(tam, "droneco", true).await?;
    h.grant_sd(tam, "drones", "droneco").await?;
    let n = h.count(20, 3);
    let fleet = h.provision(n, "drone", MgmtConfig::OemGated)?;
    let image = wasm("drone-geofence")?;
    let env = h.sign_ta("drones/geofence", 1, &image)?;
    let (st, v) = h.upload(tam, &sp, &env, "geofence").await?;
    if st != StatusCode::CREATED {
        bail!("uploading the geofence TA: the TAM answered {st}: {v}");
    }
    h.deploy(tam, &sp, "drones/geofence", "model:drone", "full")
        .await?;
    h.converge(&fleet, tam, "geofence TA rollout").await?;
    step(format!(
        "The drone operator `droneco` published the drone-geofence TA; all {n} drones installed it."
    ));
    // Tag the drones (the TAM knows them from their first attested session).
    for d in fleet.devices() {
        h.post_ok(
            tam,
            &format!("/api/v1/devices/{}/tags", d.ueid()),
            &tam.oem,
            serde_json::json!({"tags": ["munich-fleet"]}),
            StatusCode::OK,
        )
        .await?;
    }
    personalize(h, tam, &sp, ZONES_V1, 1).await?;
    h.converge(&fleet, tam, "no-fly zones v1").await?;
    let (old_lat, old_lon) = (48.1374, 11.5755);
    if all_refuse(&fleet, 48.3538, 11.7861)? != Some(true) {
        bail!("not every drone refuses the airport with zones v1");
    }
    if all_refuse(&fleet, old_lat, old_lon)? != Some(false) {
        bail!("not every drone accepts the old town with zones v1");
    }
    step(format!(
        "The no-fly zones v1 (airport) went to the tag `munich-fleet` as personalization data: every drone refuses the airport and accepts the old town ({old_lat}, {old_lon})."
    ));
    personalize(h, tam, &sp, ZONES_V2, 2).await?;
    h.converge(&fleet, tam, "no-fly zones v2").await?;
    if all_refuse(&fleet, old_lat, old_lon)? != Some(true) {
        bail!("not every drone refuses the old town with zones v2");
    }
    step(format!(
        "The zones changed (v2 adds the old town); the new data reached all {n} drones: the old town ({old_lat}, {old_lon}), accepted before, is now refused."
    ));
    Ok((n, format!("zones v2 on {n}/{n}, new zone refused")))
}

async fn personalize(h: &Harness, tam: &Tam, sp: &str, zones: &str, seq: u64) -> Result<()> {
    let env = h.sign_ta("drones/geofence/perso", seq, zones.as_bytes())?;
    let mut body = otrp_tam_server::publish::upload_body(&env, &h.sp_chain_pem, None);
    body["target"] = serde_json::json!("tag:munich-fleet");
    h.post_ok(
        tam,
        "/api/v1/personalization",
        sp,
        body,
        StatusCode::CREATED,
    )
    .await
    .with_context(|| format!("personalization data v{seq}"))?;
    Ok(())
}

/// The batch of scenario 5.
pub(super) const BATCH: &str = "drones-lot-1";

/// The TA of scenario 5 (the drone-geofence sample TA), and the data it reads.
const BATCH_TA: &str = "delivery/geofence";

/// A counter of the TAM's Prometheus exposition (`/metrics`), 0 when not yet counted.
async fn tam_counter(h: &Harness, tam: &Tam, name: &str) -> Result<u64> {
    tam_counter_with(h, tam, name, "").await
}

/// [`tam_counter`] over the series whose labels contain `label` (e.g. `auth="mac"`).
async fn tam_counter_with(h: &Harness, tam: &Tam, name: &str, label: &str) -> Result<u64> {
    let text = h
        .api
        .get(format!("{}/metrics", tam.base))
        .send()
        .await
        .context("GET /metrics")?
        .text()
        .await
        .context("GET /metrics")?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// Scenario 5, batch mode: one package, signed once by the TAM, for a batch of delivery
/// drones that share a batch key (the geofence TA and its no-fly zones); their Brokers
/// fetch it, every TEE applies it, reports come back. Then a fleet-wide data update: a
/// second package with new zones alone, and every drone answers from them.
async fn batch(h: &mut Harness, tam: &Tam) -> Result<(usize, String)> {
    let sp = h.sp_account(tam, "deliveryco", true).await?;
    h.grant_sd(tam, "delivery", "deliveryco").await?;
    let n = h.count(50, 10);
    let fleet = h.provision_in(n, "delivery-drone", MgmtConfig::OemGated, Some(BATCH))?;
    step(format!(
        "The OEM provisioned {n} delivery drones in batch `{BATCH}`: they share one batch key (PKI batch/{BATCH}.key.pem), and each holds its own report key derived from the batch's report master (batch/{BATCH}.report-master.key, which the TAM was given)."
    ));
    let first = h.converge(&fleet, tam, "first contact").await?;
    step(format!(
        "Each drone ran its first attested TEEP session ({} sessions, once per device lifetime): the TAM now knows the Agent key its reports are signed with.",
        first.sessions
    ));
    let public = {
        let rec = h
            .pki
            .index()
            .batches
            .iter()
            .find(|b| b.name == BATCH)
            .ok_or_else(|| anyhow!("no batch key {BATCH} in the PKI"))?;
        String::from_utf8(h.pki.file(&rec.public)?.to_vec()).context("batch public key")?
    };
    let image = wasm("drone-geofence")?;
    let env = otrp_tam_server::publish::ta_envelope_for_batch(
        otrp_crypto::default_provider(),
        &h.sp_key,
        BATCH_TA,
        1,
        &image,
        BATCH,
        &public,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let (st, v) = h.upload(tam, &sp, &env, "geofence TA").await?;
    if st != StatusCode::CREATED {
        bail!("uploading the geofence TA: the TAM answered {st}: {v}");
    }
    upload_batch_zones(h, tam, &sp, &public, ZONES_V1, 1).await?;
    let sigs_before = tam_counter(h, tam, "otrp_batch_signatures_total").await?;
    let pkg = h
        .post_ok(
            tam,
            &format!("/api/v1/batches/{BATCH}/packages"),
            &sp,
            serde_json::json!({"components": [BATCH_TA], "data": [BATCH_TA]}),
            StatusCode::CREATED,
        )
        .await?;
    let size = pkg["size"].as_u64().unwrap_or(0);
    step(format!(
        "deliveryco published one batch package (seq {}, {size} bytes: {}): the geofence TA and its no-fly zones v1, both encrypted to the batch key.",
        pkg["seq"],
        pkg["contents"].as_str().unwrap_or("?")
    ));
    // Every drone's Broker fetches the package, hands it to its TEE and posts the report.
    let mut states = vec![otrp_broker::BatchState::default(); n];
    let rounds = batch_rounds(h, tam, &fleet, &mut states, 2, "batch round").await?;
    let (mut reported, mut fetched_bytes, mut not_modified) = (0, 0, 0);
    for r in &rounds {
        reported += r[0].reports_sent;
        fetched_bytes += r[0].package_bytes;
        if r[1].fetch_status == Some(304) && r[1].package_bytes == 0 {
            not_modified += 1;
        }
    }
    let have = count_with(&fleet, "delivery:geofence", &image)?;
    if have != n {
        bail!("the batch package reached {have} of {n} drones");
    }
    let (old_lat, old_lon) = (48.1374, 11.5755);
    if all_refuse(&fleet, 48.3538, 11.7861)? != Some(true)
        || all_refuse(&fleet, old_lat, old_lon)? != Some(false)
    {
        bail!("not every drone answers from zones v1 (airport refused, old town allowed)");
    }
    step(format!(
        "All {n} Brokers fetched the same {size} bytes (GET /tam/batch/{BATCH}, {fetched_bytes} bytes in all); every TEE checked the TAM signature and the batch sequence and installed the TA: {have}/{n} run it and refuse the airport."
    ));
    let b = h
        .get_ok(tam, &format!("/api/v1/batches/{BATCH}"), &sp)
        .await?;
    let counted = b["packages"][0]["applied"].as_u64().unwrap_or(0);
    let failed = b["packages"][0]["failed"].as_u64().unwrap_or(0);
    let maced = tam_counter_with(h, tam, "otrp_batch_reports_total", "auth=\"mac\"").await?;
    step(format!(
        "Reports came back asynchronously: {reported} sent, the TAM counts {counted} applied, {failed} failed. A second round answered 304 Not Modified to {not_modified}/{n} (ETag, no body)."
    ));
    step(format!(
        "Each drone MAC'd its report under its own report key (derived from the batch's report master at provisioning): the TAM checked {maced} reports with one HMAC each, no signature (otrp_batch_reports_total{{auth=\"mac\"}})."
    ));
    if counted != n as u64 {
        bail!("the TAM counted {counted} applied reports for {n} drones");
    }
    if maced != n as u64 {
        bail!("the TAM checked {maced} MAC'd reports for {n} drones");
    }
    let sigs = tam_counter(h, tam, "otrp_batch_signatures_total").await? - sigs_before;
    let stored = pkg["tam_signatures"].as_u64().unwrap_or(0);
    step(format!(
        "TAM signatures: {sigs} for {n} devices (otrp_batch_signatures_total; the store says {stored} for this package). Per-device TEEP would sign at least one Update per device ({n})."
    ));
    if sigs != 1 || stored != 1 {
        bail!("the package took {sigs} TAM signatures (store: {stored}), expected 1");
    }

    // A fleet-wide data update: new zones alone, for the TA every drone already runs.
    upload_batch_zones(h, tam, &sp, &public, ZONES_V2, 2).await?;
    let pkg2 = h
        .post_ok(
            tam,
            &format!("/api/v1/batches/{BATCH}/packages"),
            &sp,
            serde_json::json!({"data": [BATCH_TA]}),
            StatusCode::CREATED,
        )
        .await?;
    let size2 = pkg2["size"].as_u64().unwrap_or(0);
    let stored2 = pkg2["tam_signatures"].as_u64().unwrap_or(0);
    if stored2 != 1 {
        bail!("the data package took {stored2} TAM signatures, expected 1");
    }
    batch_rounds(h, tam, &fleet, &mut states, 1, "data update round").await?;
    if all_refuse(&fleet, old_lat, old_lon)? != Some(true) {
        bail!("not every drone refuses the old town with zones v2");
    }
    let mut ta_kept = 0;
    for d in fleet.devices() {
        // Zone set version 2 with 2 zones, and the TA itself still manifest #1.
        let info = d.invoke("geofence", 2, &[]).context("geofence info")?;
        let ta_seq = d
            .status()?
            .manifests
            .iter()
            .find(|m| m.id.ends_with("geofence"))
            .map(|m| m.sequence_number);
        if info != [0, 0, 0, 2, 0, 0, 0, 2] {
            bail!("a drone reports zone set {info:?}, expected version 2 with 2 zones");
        }
        if ta_seq == Some(1) {
            ta_kept += 1;
        }
    }
    if ta_kept != n {
        bail!("the TA was re-installed on {} drones", n - ta_kept);
    }
    step(format!(
        "deliveryco sent the fleet new no-fly zones (v2 adds the old town) as a data-only batch package (seq {}, {size2} bytes: {}, signed once): all {n} drones applied it without re-installing the TA, and each now refuses the old town ({old_lat}, {old_lon}) it accepted before.",
        pkg2["seq"],
        pkg2["contents"].as_str().unwrap_or("?")
    ));
    Ok((
        n,
        format!("{have}/{n} applied, 1 TAM sig, zones v2 {n}/{n}"),
    ))
}

/// Signs zone set `zones` for the geofence TA of scenario 5 as batch data (manifest
/// `seq` of `delivery/geofence/perso`, encrypted to the batch public key) and uploads it.
async fn upload_batch_zones(
    h: &Harness,
    tam: &Tam,
    sp: &str,
    batch_public: &str,
    zones: &str,
    seq: u64,
) -> Result<()> {
    let env = otrp_tam_server::publish::data_envelope_for_batch(
        otrp_crypto::default_provider(),
        &h.sp_key,
        BATCH_TA,
        seq,
        zones.as_bytes(),
        BATCH,
        batch_public,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let (st, v) = h.upload(tam, sp, &env, "no-fly zones").await?;
    if st != StatusCode::CREATED {
        bail!("uploading no-fly zones v{seq}: the TAM answered {st}: {v}");
    }
    Ok(())
}

/// `per_device` batch rounds on every device of `fleet` in parallel (its Broker fetches
/// the package, hands it to its TEE and posts the report), with each device's
/// [`otrp_broker::BatchState`] in `states`; fails unless each device's first round
/// applied the package. The rounds of each device, in order.
async fn batch_rounds(
    h: &Harness,
    tam: &Tam,
    fleet: &Fleet,
    states: &mut [otrp_broker::BatchState],
    per_device: usize,
    what: &str,
) -> Result<Vec<Vec<otrp_broker::BatchRound>>> {
    let pb = super::bar(fleet.len(), what);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (d, state)) in fleet.devices().iter().zip(states.iter()).enumerate() {
        let mut tee = d.tee().clone();
        let http = h.http.clone();
        let url = tam.url.clone();
        let mut state = state.clone();
        tasks.spawn(async move {
            let mut rounds = Vec::with_capacity(per_device);
            for _ in 0..per_device {
                rounds.push(otrp_broker::batch_round(&http, &url, &mut tee, &mut state).await);
            }
            (i, state, rounds)
        });
    }
    let mut out: Vec<Vec<otrp_broker::BatchRound>> = vec![Vec::new(); fleet.len()];
    while let Some(j) = tasks.join_next().await {
        pb.inc(1);
        let (i, state, rounds) = j.context("batch round task")?;
        let rounds = rounds
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .context(what.to_owned())?;
        if rounds
            .first()
            .and_then(|r| r.applied.as_ref())
            .is_none_or(|a| a.outcome != "applied")
        {
            bail!(
                "a drone did not apply the package ({what}): {:?}",
                rounds.first()
            );
        }
        states[i] = state;
        out[i] = rounds;
    }
    pb.finish_and_clear();
    Ok(out)
}
