//! Reachability of the configured dependencies, for `/readyz`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shaku::{Component, Interface};

use crate::repository::client::DatabaseClient;
use crate::repository::error::RepoError;

/// Pings each dependency by name.
#[async_trait]
pub trait DependencyProbe: Interface {
    /// The dependency names this probe checks, in report order.
    fn names(&self) -> Vec<&'static str>;

    /// Pings `name`, bounded by `timeout`.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when it does not answer in time.
    async fn ping(&self, name: &'static str, timeout: Duration) -> Result<(), RepoError>;
}

/// [`DependencyProbe`] over the database (the in-process cache cannot be down).
#[derive(Component)]
#[shaku(interface = DependencyProbe)]
pub struct ClientProbe {
    #[shaku(inject)]
    db: Arc<dyn DatabaseClient>,
}

#[async_trait]
impl DependencyProbe for ClientProbe {
    fn names(&self) -> Vec<&'static str> {
        vec!["database"]
    }

    async fn ping(&self, name: &'static str, timeout: Duration) -> Result<(), RepoError> {
        let result = match name {
            "database" => tokio::time::timeout(timeout, self.db.database().ping()).await,
            other => {
                return Err(RepoError::Internal(
                    format!("unknown dependency {other}").into(),
                ));
            }
        };
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(RepoError::Unavailable {
                dependency: name,
                source: Box::new(e),
            }),
            Err(_) => Err(RepoError::Unavailable {
                dependency: name,
                source: format!("no answer within {timeout:?}").into(),
            }),
        }
    }
}
