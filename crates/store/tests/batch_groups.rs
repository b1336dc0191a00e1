//! The grouped batch-report queries (`Store::agent_keys_by_kid`, `Store::put_batch_reports`,
//! `Store::batch_package_exists`) give what the one-row calls give, across statement chunks.
//! SQLite always; PostgreSQL when `OTRP_TEST_DATABASE_URL` is set (own schema, dropped at
//! the end).
#![allow(clippy::unwrap_used, clippy::panic)]

use otrp_store::*;

mod common;
use common::Pair;

fn kid(i: u32) -> Vec<u8> {
    let mut k = b"kid-".to_vec();
    k.extend_from_slice(&i.to_be_bytes());
    k
}

fn agent_key(i: u32) -> AgentKeyRecord {
    AgentKeyRecord {
        kid: kid(i),
        device_id: format!("dev-{i:05}"),
        cose_key: vec![0xa1, 0x01, 0x02, (i % 251) as u8],
        bound_at: 1000 + u64::from(i),
    }
}

fn package(batch_id: &str, seq: u64) -> BatchPackageRecord {
    BatchPackageRecord {
        batch_id: batch_id.into(),
        seq,
        owner: "oem".into(),
        contents: "sd1/app#1".into(),
        bytes: vec![0xd2; 300],
        etag: "\"00\"".into(),
        tam_signatures: 1,
        created_at: 50,
    }
}

fn report(seq: u64, i: u32, success: bool, at: u64) -> BatchReportRecord {
    BatchReportRecord {
        batch_id: "lot-1".into(),
        seq,
        device_id: format!("dev-{i:05}"),
        success,
        detail: if success {
            String::new()
        } else {
            format!("err-code 1: device {i}")
        },
        received_at: at,
    }
}

/// `a` writes, `b` (another handle on the same database, as a second replica) reads.
async fn groups(a: &dyn Store, b: &dyn Store) {
    // 1100 keys: three `IN (…)` chunks.
    const KEYS: u32 = 1100;
    for i in 0..KEYS {
        a.put_agent_key(&agent_key(i)).await.unwrap();
    }
    assert_eq!(b.agent_keys_by_kid(&[]).await.unwrap(), Vec::new());
    // Every key, some twice, plus unknown kids: each known key once, unknown ones absent.
    let mut ask: Vec<Vec<u8>> = (0..KEYS).rev().map(kid).collect();
    ask.extend([kid(7), kid(1099), kid(KEYS + 1), b"no such kid".to_vec()]);
    let mut got = b.agent_keys_by_kid(&ask).await.unwrap();
    got.sort_by(|x, y| x.kid.cmp(&y.kid));
    let mut want = Vec::new();
    for i in 0..KEYS {
        want.push(a.agent_key(&kid(i)).await.unwrap().unwrap());
    }
    want.sort_by(|x, y| x.kid.cmp(&y.kid));
    assert_eq!(got.len(), KEYS as usize);
    assert_eq!(got, want);
    assert_eq!(
        b.agent_keys_by_kid(&[kid(KEYS + 5)]).await.unwrap(),
        Vec::new()
    );
    assert_eq!(
        b.agent_keys_by_kid(&[kid(3)]).await.unwrap(),
        vec![agent_key(3)]
    );

    // Package existence, without reading the row.
    a.insert_batch_package(&package("lot-1", 1)).await.unwrap();
    a.insert_batch_package(&package("lot-1", 2)).await.unwrap();
    assert!(b.batch_package_exists("lot-1", 1).await.unwrap());
    assert!(b.batch_package_exists("lot-1", 2).await.unwrap());
    assert!(!b.batch_package_exists("lot-1", 3).await.unwrap());
    assert!(!b.batch_package_exists("lot-2", 1).await.unwrap());

    // 400 reports in one call (three upsert chunks): an earlier report of device 5 is
    // replaced, device 9 appears twice in the group (the later one wins). The same records
    // written one by one on package 2 give the same rows.
    a.put_batch_reports(&[]).await.unwrap();
    a.put_batch_report(&report(1, 5, true, 10)).await.unwrap();
    a.put_batch_report(&report(2, 5, true, 10)).await.unwrap();
    let mut group: Vec<BatchReportRecord> =
        (0..400).map(|i| report(1, i, i % 7 != 0, 20)).collect();
    group.push(report(1, 9, false, 30));
    a.put_batch_reports(&group).await.unwrap();
    for r in &group {
        a.put_batch_report(&BatchReportRecord {
            seq: 2,
            ..r.clone()
        })
        .await
        .unwrap();
    }
    let grouped = b.batch_reports("lot-1", 1).await.unwrap();
    let single = b.batch_reports("lot-1", 2).await.unwrap();
    assert_eq!(grouped.len(), 400);
    assert_eq!(
        grouped,
        single
            .into_iter()
            .map(|r| BatchReportRecord { seq: 1, ..r })
            .collect::<Vec<_>>()
    );
    let nine = grouped.iter().find(|r| r.device_id == "dev-00009").unwrap();
    assert!(!nine.success);
    assert_eq!(nine.received_at, 30);
    let five = grouped.iter().find(|r| r.device_id == "dev-00005").unwrap();
    assert_eq!(five.received_at, 20);
    let failed = (0..400).filter(|i| i % 7 == 0).count() as u64 + 1;
    assert_eq!(
        b.batch_report_counts("lot-1", 1).await.unwrap(),
        BatchReportCounts {
            applied: 400 - failed,
            failed,
        }
    );
    // A later group replaces earlier reports (upsert), other devices untouched.
    a.put_batch_reports(&[report(1, 0, true, 40), report(1, 1, false, 40)])
        .await
        .unwrap();
    let after = b.batch_reports("lot-1", 1).await.unwrap();
    assert_eq!(after.len(), 400);
    assert_eq!(after[0], report(1, 0, true, 40));
    assert_eq!(after[1], report(1, 1, false, 40));
    assert_eq!(after[2], grouped[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_batch_groups() {
    let p = Pair::sqlite("otrp_batch_groups").await;
    groups(&p.a, &p.b).await;
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_batch_groups() {
    let Some(p) = Pair::postgres("otrp_batch_groups").await else {
        return;
    };
    groups(&p.a, &p.b).await;
    p.finish().await;
}
