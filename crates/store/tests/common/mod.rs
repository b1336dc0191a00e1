//! What every store test file shares: unique names and two store handles on one
//! database (SQLite file, or a PostgreSQL schema when `OTRP_TEST_DATABASE_URL` is set).
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use otrp_store::SqlStore;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test (of this or another process) uses.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{n}_{nanos}", std::process::id())
}

/// Two store handles on one database (as two TAM replicas would have) and a cleanup.
pub struct Pair {
    pub a: SqlStore,
    pub b: SqlStore,
    dir: Option<std::path::PathBuf>,
}

impl Pair {
    /// A fresh SQLite file in a temporary directory.
    pub async fn sqlite(prefix: &str) -> Pair {
        let dir = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tam.db");
        let a = SqlStore::open_sqlite(&path).await.unwrap();
        let b = SqlStore::open_sqlite(&path).await.unwrap();
        Pair {
            a,
            b,
            dir: Some(dir),
        }
    }

    /// A fresh schema in `OTRP_TEST_DATABASE_URL`; `None` (and a "skipped" line) when
    /// it is not set.
    pub async fn postgres(prefix: &str) -> Option<Pair> {
        let Ok(url) = std::env::var("OTRP_TEST_DATABASE_URL") else {
            eprintln!("skipped: OTRP_TEST_DATABASE_URL is not set, PostgreSQL test not run");
            return None;
        };
        let schema = unique(prefix);
        let a = SqlStore::connect_postgres_schema(&url, &schema)
            .await
            .unwrap();
        let b = SqlStore::connect_postgres_schema(&url, &schema)
            .await
            .unwrap();
        Some(Pair { a, b, dir: None })
    }

    /// Drops the schema or removes the file.
    pub async fn finish(self) {
        drop(self.b);
        self.a.drop_schema().await.unwrap();
        if let Some(d) = self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
