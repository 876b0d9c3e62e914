//! Liveness and readiness.

use crate::repository::rpc::HelloRpcClient;
use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use shaku::{Component, Interface};

use crate::meta::config::ServerConfig;
use crate::repository::health::{DATABASE, DependencyProbe};
use crate::repository::kv::REDIS;
use crate::repository::mongodb::user::MONGODB;
use crate::service::error::ServiceError;

/// The readiness report: every configured dependency by name.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`, or `degraded` when a non-critical dependency (a replica) is down.
    #[schema(value_type = String, pattern = "^(ready|degraded)$")]
    pub status: &'static str,
    /// `up` or `down` for each dependency.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub checks: BTreeMap<String, &'static str>,
    /// The circuit breakers of outgoing calls by method: `closed`, `open` or `half_open`. An
    /// open one makes the report `degraded`, not unready: its route answers degraded.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub breakers: BTreeMap<String, &'static str>,
}

/// Health checks.
#[async_trait]
pub trait HealthService: Interface {
    /// Checks every dependency.
    ///
    /// # Errors
    /// [`ServiceError::Unavailable`] naming the first critical dependency that is down.
    async fn readiness(&self) -> Result<Readiness, ServiceError>;
}

/// [`HealthService`] over the dependency probe.
#[derive(Component)]
#[shaku(interface = HealthService)]
pub struct HealthServiceImpl {
    #[shaku(inject)]
    probe: Arc<dyn DependencyProbe>,
    #[shaku(inject)]
    rpc: Arc<dyn HelloRpcClient>,
    /// `server.*`: how long one dependency may take to answer (`readiness_timeout`) and
    /// whether replicas are named by address (`readiness_details`; off: by position only).
    server: Arc<ServerConfig>,
}

/// Names of critical dependencies as the error carries them.
fn static_name(name: &str) -> &'static str {
    match name {
        DATABASE => DATABASE,
        REDIS => REDIS,
        MONGODB => MONGODB,
        _ => "dependency",
    }
}

#[async_trait]
impl HealthService for HealthServiceImpl {
    async fn readiness(&self) -> Result<Readiness, ServiceError> {
        let statuses = self.probe.check(self.server.readiness_timeout).await;
        if let Some(down) = statuses.iter().find(|s| s.critical && !s.up) {
            return Err(ServiceError::Unavailable {
                dependency: static_name(&down.name),
                source: down.error.clone().unwrap_or_default().into(),
            });
        }
        let breakers: BTreeMap<String, &'static str> = self
            .rpc
            .breaker()
            .map(|b| (b.name.clone(), b.state.as_str()))
            .into_iter()
            .collect();
        let degraded = statuses.iter().any(|s| !s.up) || breakers.values().any(|s| *s != "closed");
        let checks = statuses
            .into_iter()
            .map(|s| {
                let name = match s.detailed_name {
                    Some(detailed) if self.server.readiness_details => detailed,
                    _ => s.name,
                };
                (name, if s.up { "up" } else { "down" })
            })
            .collect();
        Ok(Readiness {
            status: if degraded { "degraded" } else { "ready" },
            checks,
            breakers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::health::DependencyStatus;
    use std::time::Duration;

    struct Fixed(Vec<DependencyStatus>);

    struct NoRpc;

    #[async_trait]
    impl HelloRpcClient for NoRpc {
        async fn say_hello_for(
            &self,
            _: i32,
            _: Option<std::net::IpAddr>,
        ) -> Result<String, crate::repository::rpc::RpcError> {
            Err(crate::repository::rpc::RpcError::Open(
                crate::repository::rpc::SAY_HELLO,
            ))
        }

        fn breaker(&self) -> Option<goex_breaker::Snapshot> {
            None
        }
    }

    #[async_trait]
    impl DependencyProbe for Fixed {
        async fn check(&self, _: Duration) -> Vec<DependencyStatus> {
            self.0.clone()
        }
    }

    fn status(name: &str, address: Option<&str>, up: bool, critical: bool) -> DependencyStatus {
        DependencyStatus {
            name: name.to_owned(),
            detailed_name: address.map(|a| format!("database_replica:{a}")),
            up,
            critical,
            error: (!up).then(|| "down".to_owned()),
        }
    }

    fn service(details: bool) -> HealthServiceImpl {
        HealthServiceImpl {
            probe: Arc::new(Fixed(vec![
                status(DATABASE, None, true, true),
                status("database_replica_0", Some("10.0.0.5:3306"), true, false),
                status("database_replica_1", Some("10.0.0.6:3306"), false, false),
            ])),
            rpc: Arc::new(NoRpc),
            server: Arc::new(ServerConfig {
                readiness_timeout: Duration::from_secs(1),
                readiness_details: details,
                ..crate::meta::config::shipped_test_profile().server
            }),
        }
    }

    fn checks(pairs: &[(&str, &'static str)]) -> BTreeMap<String, &'static str> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[tokio::test]
    async fn replicas_are_named_by_position_unless_details_are_on() {
        let report = service(false).readiness().await.unwrap();
        assert_eq!(report.status, "degraded");
        assert_eq!(
            report.checks,
            checks(&[
                ("database", "up"),
                ("database_replica_0", "up"),
                ("database_replica_1", "down"),
            ])
        );
        let detailed = service(true).readiness().await.unwrap();
        assert_eq!(
            detailed.checks,
            checks(&[
                ("database", "up"),
                ("database_replica:10.0.0.5:3306", "up"),
                ("database_replica:10.0.0.6:3306", "down"),
            ])
        );
    }
}
