//! Read replicas of a MySQL group (the original's xorm `EngineGroup`): a read picks a healthy
//! replica by policy; a background check takes failing replicas out and puts them back when they
//! answer again; with no healthy replica, reads go to the primary.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::recycle::MysqlPool;
use diesel_async::SimpleAsyncConnection;
use serde::Deserialize;
use slog::Logger;

/// How reads are spread over healthy replicas (`mysql.read_policy`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReadPolicy {
    /// Each replica in turn (xorm's default `RoundRobinPolicy`).
    RoundRobin,
    /// A uniformly random replica.
    Random,
    /// Random, proportional to `weight`.
    Weighted,
    /// The replica with the fewest reads in flight.
    LeastConnections,
}

/// One replica with its pool and its state.
pub struct Replica {
    label: String,
    node: usize,
    pub(crate) pool: MysqlPool,
    weight: u32,
    healthy: AtomicBool,
    in_flight: AtomicUsize,
    reads: AtomicU64,
}

impl Replica {
    pub(crate) fn new(label: String, node: usize, pool: MysqlPool, weight: u32) -> Self {
        Self {
            label,
            node,
            pool,
            weight: weight.max(1),
            healthy: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
            reads: AtomicU64::new(0),
        }
    }

    /// `host:port` of the replica (never the credentials).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Its index among the database's nodes (the primary is 0).
    pub fn node(&self) -> usize {
        self.node
    }

    /// Whether reads may go to it.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The replica's pool.
    pub fn pool(&self) -> &MysqlPool {
        &self.pool
    }

    /// Counts a read in flight until the guard drops.
    pub fn begin_read(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.reads.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }
}

/// A read in flight on a replica.
pub struct InFlight<'a>(&'a Replica);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reads served per node, for tests, metrics and `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStats {
    /// `primary` or the replica's `host:port`.
    pub label: String,
    /// Whether it takes reads now.
    pub healthy: bool,
    /// Reads it has served (replica reads that fell back are counted on the primary too).
    pub reads: u64,
}

/// The replicas of the group and the read policy.
pub(crate) struct ReplicaSet {
    pub(crate) replicas: Vec<Replica>,
    policy: ReadPolicy,
    cursor: AtomicUsize,
    random: AtomicU64,
    pub(crate) primary_reads: AtomicU64,
}

impl ReplicaSet {
    pub(crate) fn new(replicas: Vec<Replica>, policy: ReadPolicy) -> Self {
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(replicas.len());
            h.finish() | 1
        };
        Self {
            replicas,
            policy,
            cursor: AtomicUsize::new(0),
            random: AtomicU64::new(seed),
            primary_reads: AtomicU64::new(0),
        }
    }

    /// A healthy replica by policy, or `None` (read from the primary).
    pub(crate) fn pick(&self) -> Option<&Replica> {
        let n = self.replicas.len();
        if n == 0 {
            return None;
        }
        let healthy = |i: usize| self.replicas[i].is_healthy();
        let index = match self.policy {
            ReadPolicy::RoundRobin => {
                first_healthy(n, self.cursor.fetch_add(1, Ordering::Relaxed), healthy)
            }
            ReadPolicy::Random => first_healthy(n, self.next_random() as usize, healthy),
            ReadPolicy::Weighted => {
                let weights: u64 = self
                    .replicas
                    .iter()
                    .filter(|r| r.is_healthy())
                    .map(|r| u64::from(r.weight))
                    .sum();
                (weights > 0)
                    .then(|| weighted(&self.replicas, self.next_random() % weights))
                    .flatten()
            }
            ReadPolicy::LeastConnections => (0..n)
                .filter(|&i| healthy(i))
                .min_by_key(|&i| (self.replicas[i].in_flight.load(Ordering::Relaxed), i)),
        };
        index.map(|i| &self.replicas[i])
    }

    /// xorshift64: spreading reads needs no cryptographic randomness.
    fn next_random(&self) -> u64 {
        let mut x = self.random.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random.store(x, Ordering::Relaxed);
        x
    }

    pub(crate) fn stats(&self) -> Vec<NodeStats> {
        let mut out = vec![NodeStats {
            label: crate::PRIMARY_LABEL.into(),
            healthy: true,
            reads: self.primary_reads.load(Ordering::Relaxed),
        }];
        out.extend(self.replicas.iter().map(|r| NodeStats {
            label: r.label.clone(),
            healthy: r.is_healthy(),
            reads: r.reads.load(Ordering::Relaxed),
        }));
        out
    }

    /// Takes a replica out after a failed read, without waiting for the next check.
    pub(crate) fn mark_failed(
        &self,
        replica: &Replica,
        logger: &Logger,
        error: &dyn std::fmt::Display,
    ) {
        if replica.healthy.swap(false, Ordering::Relaxed) {
            slog::warn!(logger, "replica taken out of rotation; reads fall back"; "replica" => &replica.label, "error" => %error);
            drop_idle(replica);
        }
    }
}

/// The first healthy index at or after `start`, wrapping around.
fn first_healthy(n: usize, start: usize, healthy: impl Fn(usize) -> bool) -> Option<usize> {
    (0..n).map(|k| (start + k) % n).find(|&i| healthy(i))
}

/// The healthy replica that `ticket` (in `0..sum of healthy weights`) falls on.
fn weighted(replicas: &[Replica], mut ticket: u64) -> Option<usize> {
    for (i, r) in replicas.iter().enumerate().filter(|(_, r)| r.is_healthy()) {
        let w = u64::from(r.weight);
        if ticket < w {
            return Some(i);
        }
        ticket -= w;
    }
    None
}

/// Idle connections to a failed replica are dead: close them so recovery starts fresh.
fn drop_idle(replica: &Replica) {
    replica.pool.retain(|_, _| false);
}

/// Pings every replica each `interval`: a failing one leaves the rotation, a recovered one
/// returns. Stops when the database is dropped or its pools are closed.
pub(crate) fn spawn_health_checks(
    set: Weak<ReplicaSet>,
    interval: Duration,
    timeout: Duration,
    logger: Logger,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(set) = set.upgrade() else { break };
            if set.replicas.first().is_some_and(|r| r.pool.is_closed()) {
                break;
            }
            let checks = set.replicas.iter().map(|r| ping(r, timeout));
            let results = futures_util::future::join_all(checks).await;
            for (replica, result) in set.replicas.iter().zip(results) {
                match result {
                    Ok(()) => {
                        if !replica.healthy.swap(true, Ordering::Relaxed) {
                            slog::info!(logger, "replica back in rotation"; "replica" => &replica.label);
                        }
                    }
                    Err(e) => set.mark_failed(replica, &logger, &e),
                }
            }
        }
    });
}

async fn ping(replica: &Replica, timeout: Duration) -> Result<(), String> {
    let check = async {
        let mut conn = replica.pool.get().await.map_err(|e| e.to_string())?;
        conn.batch_execute("SELECT 1")
            .await
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(timeout, check)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

/// Keeps the set alive for as long as the database is.
pub(crate) type SharedSet = Arc<ReplicaSet>;

#[cfg(test)]
mod tests {
    use super::*;
    use diesel_async::AsyncMysqlConnection;

    fn set(weights: &[u32], policy: ReadPolicy) -> ReplicaSet {
        let replicas = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let manager = crate::recycle::MysqlManager::new(
                    diesel_async::pooled_connection::AsyncDieselConnectionManager::<
                        AsyncMysqlConnection,
                    >::new(format!("mysql://u@127.0.0.1:1/{i}")),
                    crate::recycle::VERIFY_AFTER,
                );
                Replica::new(
                    format!("r{i}"),
                    i + 1,
                    MysqlPool::builder(manager).build().unwrap(),
                    *w,
                )
            })
            .collect();
        ReplicaSet::new(replicas, policy)
    }

    fn counts(set: &ReplicaSet, n: usize) -> Vec<usize> {
        let mut c = vec![0; set.replicas.len()];
        for _ in 0..n {
            let r = set.pick().unwrap();
            c[set
                .replicas
                .iter()
                .position(|x| std::ptr::eq(x, r))
                .unwrap()] += 1;
        }
        c
    }

    #[test]
    fn round_robin_alternates_and_skips_unhealthy() {
        let s = set(&[1, 1, 1], ReadPolicy::RoundRobin);
        assert_eq!(counts(&s, 300), vec![100, 100, 100]);
        s.replicas[1].healthy.store(false, Ordering::Relaxed);
        let c = counts(&s, 300);
        assert_eq!(c[1], 0);
        assert_eq!(c[0] + c[2], 300);
    }

    #[test]
    fn weighted_follows_weights() {
        let s = set(&[1, 3], ReadPolicy::Weighted);
        let c = counts(&s, 40_000);
        let share = c[1] as f64 / 40_000.0;
        assert!((0.72..0.78).contains(&share), "{c:?}");
    }

    #[test]
    fn random_spreads_reads() {
        let s = set(&[1, 1], ReadPolicy::Random);
        let c = counts(&s, 10_000);
        assert!(c.iter().all(|&n| n > 4_000), "{c:?}");
    }

    #[test]
    fn least_connections_prefers_the_idle_replica() {
        let s = set(&[1, 1], ReadPolicy::LeastConnections);
        let _busy = s.replicas[0].begin_read();
        assert!(std::ptr::eq(s.pick().unwrap(), &s.replicas[1]));
    }

    #[test]
    fn no_healthy_replica_means_the_primary() {
        for policy in [
            ReadPolicy::RoundRobin,
            ReadPolicy::Random,
            ReadPolicy::Weighted,
            ReadPolicy::LeastConnections,
        ] {
            let s = set(&[1, 2], policy);
            for r in &s.replicas {
                r.healthy.store(false, Ordering::Relaxed);
            }
            assert!(s.pick().is_none(), "{policy:?}");
        }
        assert!(set(&[], ReadPolicy::RoundRobin).pick().is_none());
    }
}
