//! Reachability of the configured dependencies, for `/readyz`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shaku::{Component, Interface};

use crate::repository::client::DatabaseClient;
use crate::repository::client::{MongoClientHandle, MongoOperation};
use crate::repository::kv::{KeyValueClient, REDIS};
use crate::repository::mongodb::user::MONGODB;

/// One dependency's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependencyStatus {
    /// Its name: `database`, `redis`, `mongodb`, or `database_replica_<i>` (replicas by their
    /// position in `mysql.replicas`, so the report does not reveal the topology).
    pub name: String,
    /// The name with the node's address, `database_replica:<host:port>`, for reports that may
    /// show it (`server.readiness_details`); `None` when it would add nothing.
    pub detailed_name: Option<String>,
    /// Whether it answered.
    pub up: bool,
    /// Whether the service is unready without it (a replica is not: reads fall back).
    pub critical: bool,
    /// The failure, for the log.
    pub error: Option<String>,
}

/// Checks every configured dependency.
#[async_trait]
pub trait DependencyProbe: Interface {
    /// Pings the dependencies, each bounded by `timeout`, in report order.
    async fn check(&self, timeout: Duration) -> Vec<DependencyStatus>;
}

/// [`DependencyProbe`] over the clients (the in-process cache cannot be down).
#[derive(Component)]
#[shaku(interface = DependencyProbe)]
pub struct ClientProbe {
    #[shaku(inject)]
    db: Arc<dyn DatabaseClient>,
    #[shaku(inject)]
    kv: Arc<dyn KeyValueClient>,
    #[shaku(inject)]
    mongo: Arc<dyn MongoClientHandle>,
}

/// The name of the primary database in reports and in 503 answers.
pub const DATABASE: &str = "database";

/// A critical dependency's status from one bounded ping.
async fn ping<E: std::fmt::Display>(
    name: &str,
    timeout: Duration,
    ping: impl Future<Output = Result<(), E>>,
) -> DependencyStatus {
    let error = match tokio::time::timeout(timeout, ping).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {timeout:?}")),
    };
    DependencyStatus {
        name: name.to_owned(),
        detailed_name: None,
        up: error.is_none(),
        critical: true,
        error,
    }
}

#[async_trait]
impl DependencyProbe for ClientProbe {
    async fn check(&self, timeout: Duration) -> Vec<DependencyStatus> {
        let db = self.db.database();
        let mut out = vec![ping(DATABASE, timeout, db.ping()).await];
        if self.kv.backend() == REDIS {
            out.push(ping(REDIS, timeout, self.kv.ping()).await);
        }
        if let Some(mongo) = self.mongo.client() {
            let metrics = self.mongo.metrics(MongoOperation::Ping);
            let pinged = goex_metrics::timed(metrics, goex_mongo::MongoError::kind, mongo.ping());
            out.push(ping(MONGODB, timeout, pinged).await);
        }
        // Replicas are pinged by the database's own health check; report what it found.
        out.extend(
            db.node_stats()
                .into_iter()
                .filter(|n| n.label != "primary")
                .enumerate()
                .map(|(i, n)| DependencyStatus {
                    name: format!("database_replica_{i}"),
                    detailed_name: Some(format!("database_replica:{}", n.label)),
                    up: n.healthy,
                    critical: false,
                    error: (!n.healthy)
                        .then(|| "out of rotation; reads use the primary".to_owned()),
                }),
        );
        out
    }
}
