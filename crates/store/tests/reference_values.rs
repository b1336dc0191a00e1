//! Reference values in the store: SQLite always; PostgreSQL when `OTRP_TEST_DATABASE_URL`
//! is set (own schema, dropped at the end). Two handles on one database stand for two
//! TAM replicas.
#![allow(clippy::unwrap_used, clippy::panic)]

use otrp_store::*;

mod common;
use common::Pair;

fn rec(model: &str, m: &[&[u8]], hw: &[&str], by: &str) -> ReferenceValuesRecord {
    ReferenceValuesRecord {
        model: model.into(),
        measurements: m.iter().map(|x| x.to_vec()).collect(),
        hwversions: hw.iter().map(|x| (*x).to_owned()).collect(),
        removed: false,
        updated_at: 1_700_000_000,
        updated_by: by.into(),
    }
}

async fn scenario(a: &SqlStore, b: &SqlStore) {
    assert!(a.all_reference_values().await.unwrap().is_empty());
    // Seeding inserts once; a second seed (another replica's config) does not override.
    let seeded = rec(
        "door-lock",
        &[&[0x5a; 32]],
        &["1.0", "1,1 with comma"],
        "config",
    );
    assert!(a.seed_reference_values(&seeded).await.unwrap());
    let other = rec("door-lock", &[&[0x01; 32]], &[], "config");
    assert!(!b.seed_reference_values(&other).await.unwrap());
    assert_eq!(b.reference_values("door-lock").await.unwrap(), Some(seeded));
    // An admin change through one handle is what the other reads.
    let edited = rec("door-lock", &[&[0x5a; 32], &[0x6b; 32], &[]], &[], "oem");
    a.put_reference_values(&edited).await.unwrap();
    assert_eq!(b.reference_values("door-lock").await.unwrap(), Some(edited));
    // A tombstone stays and blocks seeding.
    let mut gone = rec("thermostat", &[], &[], "oem");
    gone.removed = true;
    b.put_reference_values(&gone).await.unwrap();
    assert!(!a
        .seed_reference_values(&rec("thermostat", &[&[1]], &[], "config"))
        .await
        .unwrap());
    let all = a.all_reference_values().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|r| (r.model.as_str(), r.removed))
            .collect::<Vec<_>>(),
        vec![("door-lock", false), ("thermostat", true)]
    );
    assert_eq!(a.reference_values("nope").await.unwrap(), None);
}

#[tokio::test]
async fn reference_values_sqlite() {
    let p = Pair::sqlite("otrp_store_refs").await;
    scenario(&p.a, &p.b).await;
    p.finish().await;
}

#[tokio::test]
async fn reference_values_postgres() {
    let Some(p) = Pair::postgres("otrp_refs").await else {
        return;
    };
    scenario(&p.a, &p.b).await;
    p.finish().await;
}
