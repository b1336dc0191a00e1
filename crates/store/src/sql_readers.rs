//! SQLite connections for the reads of a TEEP exchange, outside the pool.
//!
//! sqlx runs every SQLite connection on a thread of its own, and its pool sends a ping
//! (one more round trip to that thread) whenever a connection goes back to it — there to
//! flush what a cancelled PostgreSQL or MySQL query left on the wire. A SQLite read leaves
//! nothing to flush: the worker runs commands in order and a dropped caller's results are
//! discarded. The exchange's reads (`known_agent`, `deployment_plans`, `token_with_keys`)
//! therefore run on a few connections of their own, each behind an async lock, without
//! that round trip; everything else keeps the pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, SqliteConnection};
use tokio::sync::{Mutex, MutexGuard};

use crate::Result;

/// The read connections.
#[derive(Debug, Clone)]
pub(crate) struct Readers {
    conns: Arc<[Mutex<SqliteConnection>]>,
    next: Arc<AtomicUsize>,
    opts: SqliteConnectOptions,
}

impl Readers {
    /// Opens `n` (at least one) read connections.
    pub(crate) async fn open(opts: &SqliteConnectOptions, n: usize) -> Result<Readers> {
        let mut conns = Vec::with_capacity(n.max(1));
        for _ in 0..n.max(1) {
            conns.push(Mutex::new(opts.connect().await?));
        }
        Ok(Readers {
            conns: conns.into(),
            next: Arc::new(AtomicUsize::new(0)),
            opts: opts.clone(),
        })
    }

    /// A free connection, or (all busy) the next one in turn once it is free.
    pub(crate) async fn get(&self) -> MutexGuard<'_, SqliteConnection> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(g) = self.conns[(start + i) % n].try_lock() {
                return g;
            }
        }
        self.conns[start % n].lock().await
    }

    /// After a failed read: a connection whose worker thread is gone is opened again
    /// (best effort; the read's own error is what the caller sees).
    pub(crate) async fn recover<T>(&self, conn: &mut SqliteConnection, r: &Result<T>) {
        if super::worker_gone(r) {
            if let Ok(fresh) = self.opts.connect().await {
                *conn = fresh;
            }
        }
    }
}
