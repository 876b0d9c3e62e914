//! The database's pool metrics, wired: the one place that knows both `goex-database` and
//! `goex-metrics`. Neither crate depends on the other — the database reports checkouts to a
//! [`PoolObserver`] trait of its own and exposes its pools' numbers as plain values; the
//! metrics crate names the families and collects from a closure — so each client crate stays
//! free of Prometheus (CONVENTIONS: client crates use only `modules/{errors,config}`), and the
//! adapter below is all the glue there is.

use std::sync::Arc;
use std::time::Duration;

use goex_database::{AcquireFailure, Database, PoolObserver};
use goex_metrics::{CallMetrics, Metrics, MetricsError, PoolSample};

/// Checkout handles per node, in the database's node order.
struct PoolCheckouts(Vec<CallMetrics>);

impl PoolObserver for PoolCheckouts {
    fn checkout(&self, node: usize, waited: Duration, failure: Option<AcquireFailure>) {
        if let Some(metrics) = self.0.get(node) {
            metrics.observe(waited.as_secs_f64(), failure.map(AcquireFailure::as_str));
        }
    }
}

/// Registers the pool gauges of every node of `database` (read from its pools at each
/// scrape) and returns the database reporting its checkouts.
///
/// # Errors
/// The registry refused the collector (a database registered twice).
pub fn observe_database(database: Database, metrics: &Metrics) -> Result<Database, MetricsError> {
    let nodes = distinct(database.node_labels());
    let kinds = AcquireFailure::ALL.map(AcquireFailure::as_str);
    // The collector holds a clone of the pools (cheap handles); the metrics live as long as
    // the process's `Infra`, which closes the pools at shutdown.
    let pools = database.clone();
    let checkouts = metrics.database_pools(database.backend(), &nodes, &kinds, move || {
        pools
            .pool_status()
            .into_iter()
            .map(|s| PoolSample {
                size: s.size as u64,
                in_use: s.in_use() as u64,
                max_size: s.max_size as u64,
                waiting: s.waiting as u64,
            })
            .collect()
    })?;
    Ok(database.with_observer(Arc::new(PoolCheckouts(checkouts))))
}

/// `labels` with repeats made distinct (`db:3306`, `db:3306#2`): a replica listed twice (to
/// weigh it double) must not give two series the same labels.
fn distinct(labels: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(labels.len());
    for (i, label) in labels.into_iter().enumerate() {
        if out.contains(&label) {
            out.push(format!("{label}#{i}"));
        } else {
            out.push(label);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_node_labels_are_made_distinct() {
        let labels = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            distinct(labels(&["primary", "db:3306", "db:3306"])),
            labels(&["primary", "db:3306", "db:3306#2"])
        );
        assert_eq!(distinct(labels(&["primary"])), labels(&["primary"]));
    }
}
