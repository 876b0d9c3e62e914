//! Liveness and readiness.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use shaku::{Component, Interface};

use crate::repository::error::RepoError;
use crate::repository::health::DependencyProbe;
use crate::service::error::ServiceError;

/// The readiness report: every configured dependency by name.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Readiness {
    /// `ready`.
    pub status: &'static str,
    /// `up` for each dependency.
    pub checks: BTreeMap<&'static str, &'static str>,
}

/// Health checks.
#[async_trait]
pub trait HealthService: Interface {
    /// Pings every dependency concurrently.
    ///
    /// # Errors
    /// [`ServiceError::Unavailable`] naming the first dependency (in report order) that is down.
    async fn readiness(&self) -> Result<Readiness, ServiceError>;
}

/// [`HealthService`] over the dependency probe.
#[derive(Component)]
#[shaku(interface = HealthService)]
pub struct HealthServiceImpl {
    #[shaku(inject)]
    probe: Arc<dyn DependencyProbe>,
    /// How long one dependency may take to answer.
    timeout: Duration,
}

#[async_trait]
impl HealthService for HealthServiceImpl {
    async fn readiness(&self) -> Result<Readiness, ServiceError> {
        let names = self.probe.names();
        let results = futures_util::future::join_all(
            names.iter().map(|name| self.probe.ping(name, self.timeout)),
        )
        .await;
        let mut checks = BTreeMap::new();
        for (name, result) in names.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    checks.insert(name, "up");
                }
                Err(RepoError::Unavailable { dependency, source }) => {
                    return Err(ServiceError::Unavailable { dependency, source });
                }
                Err(other) => return Err(other.into()),
            }
        }
        Ok(Readiness {
            status: "ready",
            checks,
        })
    }
}
