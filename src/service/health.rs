//! Liveness and readiness.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use shaku::{Component, Interface};

use crate::repository::health::{DATABASE, DependencyProbe};
use crate::repository::kv::REDIS;
use crate::repository::mongodb::user::MONGODB;
use crate::service::error::ServiceError;

/// The readiness report: every configured dependency by name.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Readiness {
    /// `ready`, or `degraded` when a non-critical dependency (a replica) is down.
    pub status: &'static str,
    /// `up` or `down` for each dependency.
    pub checks: BTreeMap<String, &'static str>,
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
    /// How long one dependency may take to answer.
    timeout: Duration,
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
        let statuses = self.probe.check(self.timeout).await;
        if let Some(down) = statuses.iter().find(|s| s.critical && !s.up) {
            return Err(ServiceError::Unavailable {
                dependency: static_name(&down.name),
                source: down.error.clone().unwrap_or_default().into(),
            });
        }
        let degraded = statuses.iter().any(|s| !s.up);
        let checks = statuses
            .into_iter()
            .map(|s| (s.name, if s.up { "up" } else { "down" }))
            .collect();
        Ok(Readiness {
            status: if degraded { "degraded" } else { "ready" },
            checks,
        })
    }
}
