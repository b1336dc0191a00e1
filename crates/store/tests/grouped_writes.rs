//! `Store::apply` and `Store::consume_and_apply`: one transaction per group, the one-time
//! semantics of the single consume calls kept. SQLite always; PostgreSQL when
//! `OTRP_TEST_DATABASE_URL` is set (own schema, dropped at the end).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use otrp_store::*;

mod common;
use common::Pair;

fn query_token(t: &[u8], challenge: &[u8]) -> TokenRecord {
    TokenRecord {
        token: t.to_vec(),
        kind: TokenKind::Query,
        device_id: None,
        challenge: Some(challenge.to_vec()),
        data_items: 3,
        sent: Vec::new(),
        created_at: 100,
        expires_at: 1000,
        consumed_at: None,
    }
}

fn challenge(c: &[u8], t: &[u8], expires_at: u64) -> ChallengeRecord {
    ChallengeRecord {
        challenge: c.to_vec(),
        token: t.to_vec(),
        created_at: 100,
        expires_at,
        consumed_at: None,
    }
}

fn device(id: &str) -> DeviceRecord {
    DeviceRecord {
        id: id.into(),
        ueid: vec![1, 2, 3],
        model: "m".into(),
        hwversion: "1".into(),
        tags: vec!["lab".into()],
        suite_alg: Some(-9),
        revoked: false,
        created_at: 100,
    }
}

fn attestation(id: &str) -> AttestationRecord {
    AttestationRecord {
        device_id: id.into(),
        status: ArStatus::Affirming,
        tee_version: "1".into(),
        measurement: vec![7; 32],
        agent_kid: vec![9; 32],
        verified_at: 200,
        expires_at: 900,
    }
}

async fn grouped(s: Arc<dyn Store>, s2: Arc<dyn Store>) {
    // apply: token + challenge in one go.
    let t = b"grouped-token-01".to_vec();
    let c = b"grouped-challenge-0123456789abcd".to_vec();
    s.apply(&[
        StoreWrite::InsertToken(query_token(&t, &c)),
        StoreWrite::InsertChallenge(challenge(&c, &t, 1000)),
    ])
    .await
    .unwrap();
    assert!(s.token(&t).await.unwrap().is_some());

    // A failing write rolls the whole group back.
    let err = s
        .apply(&[
            StoreWrite::PutDevice(device("rolled-back")),
            StoreWrite::InsertToken(query_token(&t, &c)),
        ])
        .await;
    assert!(matches!(err, Err(StoreError::Exists { what: "token", .. })));
    assert!(s.device("rolled-back").await.unwrap().is_none());
    assert!(matches!(
        s.apply(&[StoreWrite::SetDeviceSuite {
            id: "nobody".into(),
            alg: -9
        }])
        .await,
        Err(StoreError::NotFound { .. })
    ));

    // consume_and_apply: exactly one of several racing callers (two replicas) wins and
    // records; the others are refused as replays and record nothing.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let st = if i % 2 == 0 { s.clone() } else { s2.clone() };
        let (t, c) = (t.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("dev{i}");
            let writes = [
                StoreWrite::PutDevice(device(&id)),
                StoreWrite::PutAttestation(attestation(&id)),
            ];
            (
                id,
                st.consume_and_apply(&t, Some(&c), 200, &writes)
                    .await
                    .unwrap(),
            )
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (id, r) = task.await.unwrap();
        match r {
            Ok(rec) => {
                assert_eq!(rec.consumed_at, Some(200));
                winners.push(id);
            }
            Err(f) => assert_eq!(f, ConsumeFailure::Token(ConsumeRefusal::Replayed)),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one caller consumes the token");
    let devices = s.devices().await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].id, winners[0]);
    assert_eq!(devices[0].tags, vec!["lab".to_string()]);
    assert_eq!(
        s.attestation(&winners[0]).await.unwrap(),
        Some(attestation(&winners[0]))
    );
    assert_eq!(
        s.consume_challenge(&c, 201).await.unwrap(),
        Err(ConsumeRefusal::Replayed)
    );

    // Unknown and expired tokens change nothing.
    assert_eq!(
        s.consume_and_apply(
            b"never-issued",
            None,
            200,
            &[StoreWrite::PutDevice(device("x"))]
        )
        .await
        .unwrap(),
        Err(ConsumeFailure::Token(ConsumeRefusal::Unknown))
    );
    assert_eq!(
        s.consume_and_apply(&t, None, 2000, &[StoreWrite::PutDevice(device("x"))])
            .await
            .unwrap(),
        Err(ConsumeFailure::Token(ConsumeRefusal::Replayed))
    );
    assert!(s.device("x").await.unwrap().is_none());

    // A refused (expired) challenge: the token stays consumed, no write is applied.
    let t2 = b"grouped-token-02".to_vec();
    let c2 = b"grouped-challenge-expiring-00000".to_vec();
    s.apply(&[
        StoreWrite::InsertToken(query_token(&t2, &c2)),
        StoreWrite::InsertChallenge(challenge(&c2, &t2, 150)),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.consume_and_apply(&t2, Some(&c2), 200, &[StoreWrite::PutDevice(device("y"))])
            .await
            .unwrap(),
        Err(ConsumeFailure::Challenge(ConsumeRefusal::Expired))
    );
    assert!(s.device("y").await.unwrap().is_none());
    assert_eq!(
        s.consume_token(&t2, 200).await.unwrap(),
        Err(ConsumeRefusal::Replayed)
    );

    // A long group (SQLite sends it as one multi-statement command): the failing
    // statement is named by its own write (the challenge, not the token before it), and
    // nothing of the group stays.
    let tagged = DeviceRecord {
        tags: vec!["a".into(), "b".into(), "c".into()],
        ..device("tagged")
    };
    let t3 = b"grouped-token-03".to_vec();
    let err = s
        .apply(&[
            StoreWrite::PutDevice(tagged.clone()),
            StoreWrite::PutAttestation(attestation("tagged")),
            StoreWrite::InsertToken(query_token(&t3, &c)),
            StoreWrite::InsertChallenge(challenge(&c, &t3, 1000)),
            StoreWrite::PutDevice(device("after-the-failure")),
        ])
        .await;
    assert!(
        matches!(
            &err,
            Err(StoreError::Exists {
                what: "challenge",
                ..
            })
        ),
        "{err:?}"
    );
    assert!(s.device("tagged").await.unwrap().is_none());
    assert!(s.attestation("tagged").await.unwrap().is_none());
    assert!(s.token(&t3).await.unwrap().is_none());
    assert!(s.device("after-the-failure").await.unwrap().is_none());
    // The same group minus the reused challenge applies whole, every value in its place.
    s.apply(&[
        StoreWrite::PutDevice(tagged.clone()),
        StoreWrite::PutAttestation(attestation("tagged")),
        StoreWrite::InsertToken(query_token(&t3, &c)),
        StoreWrite::SetDeviceSuite {
            id: "tagged".into(),
            alg: -7,
        },
    ])
    .await
    .unwrap();
    let mut got = s.device("tagged").await.unwrap().unwrap();
    got.tags.sort();
    assert_eq!(
        got,
        DeviceRecord {
            suite_alg: Some(-7),
            ..tagged
        }
    );
    assert_eq!(
        s.attestation("tagged").await.unwrap(),
        Some(attestation("tagged"))
    );
    assert_eq!(s.token(&t3).await.unwrap(), Some(query_token(&t3, &c)));
    // A stateless token inserted as spent, with the writes after it (what a QueryResponse
    // commits): a second insert of it is refused as existing and leaves no trace.
    let t4 = b"grouped-token-04".to_vec();
    let spent = TokenRecord {
        consumed_at: Some(300),
        challenge: None,
        ..query_token(&t4, &c)
    };
    s.apply(&[StoreWrite::InsertToken(spent.clone())])
        .await
        .unwrap();
    assert_eq!(s.token(&t4).await.unwrap(), Some(spent.clone()));
    let again = s
        .apply(&[
            StoreWrite::InsertToken(spent),
            StoreWrite::PutDevice(device("replayed")),
        ])
        .await;
    assert!(matches!(
        again,
        Err(StoreError::Exists { what: "token", .. })
    ));
    assert!(s.device("replayed").await.unwrap().is_none());
    // consume_and_apply whose write fails: the error, and the token is not consumed.
    let t5 = b"grouped-token-05".to_vec();
    s.apply(&[StoreWrite::InsertToken(query_token(&t5, &c))])
        .await
        .unwrap();
    let failed = s
        .consume_and_apply(
            &t5,
            None,
            200,
            &[
                StoreWrite::PutDevice(device("half")),
                StoreWrite::InsertToken(query_token(&t4, &c)),
            ],
        )
        .await;
    assert!(
        matches!(failed, Err(StoreError::Exists { what: "token", .. })),
        "{failed:?}"
    );
    assert!(s.device("half").await.unwrap().is_none());
    assert_eq!(s.token(&t5).await.unwrap().unwrap().consumed_at, None);

    // Groups whose callers give up part way (a client that hung up: the future is
    // dropped after 0..2 ms): each group is all or nothing, and the store keeps working
    // (SQLite: its write connection, which is not a pool's).
    for i in 0..24u64 {
        let id = format!("abandoned-{i}");
        let tok = format!("abandoned-token-{i}").into_bytes();
        let mut tagged = device(&id);
        tagged.tags = (0..8).map(|t| format!("t{t}")).collect();
        let group = [
            StoreWrite::PutDevice(tagged),
            StoreWrite::PutAttestation(attestation(&id)),
            StoreWrite::InsertToken(query_token(&tok, &c)),
        ];
        let wait = std::time::Duration::from_micros(i * 80);
        let _ = tokio::time::timeout(wait, s.apply(&group)).await;
        // What was already sent may still commit after the caller left (PostgreSQL runs
        // what reached it; SQLite's worker what was queued): let it settle, then the group
        // must be there whole or not at all.
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let dev = s.device(&id).await.unwrap();
        let has_token = s.token(&tok).await.unwrap().is_some();
        assert_eq!(dev.is_some(), has_token, "group {i} is all or nothing");
        assert_eq!(
            s.attestation(&id).await.unwrap().is_some(),
            has_token,
            "group {i}"
        );
        if let Some(d) = dev {
            assert_eq!(d.tags.len(), 8, "group {i}");
        }
    }
    s.apply(&[StoreWrite::PutDevice(device("after-abandoned"))])
        .await
        .unwrap();
    assert!(s.device("after-abandoned").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_grouped_writes() {
    let p = Pair::sqlite("otrp_grouped").await;
    grouped(Arc::new(p.a.clone()), Arc::new(p.b.clone())).await;
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_grouped_writes() {
    let Some(p) = Pair::postgres("otrp_grouped").await else {
        return;
    };
    grouped(Arc::new(p.a.clone()), Arc::new(p.b.clone())).await;
    p.finish().await;
}
