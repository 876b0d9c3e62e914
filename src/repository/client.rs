//! Client components: the pools and clients built by `assembly::infra`, handed to the module as
//! component parameters so repositories receive them by injection (wire's `NewMysqlGroupClient`).

use goex_cache::LocalCache;
use goex_database::Database;
use goex_metrics::CallMetrics;
use goex_mongo::{MongoClient, MongoError};
use shaku::{Component, Interface};

/// The relational database client (MySQL or the embedded SQLite).
pub trait DatabaseClient: Interface {
    /// The pool handle.
    fn database(&self) -> &Database;
}

/// [`DatabaseClient`] over a built [`Database`].
#[derive(Component)]
#[shaku(interface = DatabaseClient)]
pub struct DatabaseClientImpl {
    db: Database,
}

impl DatabaseClient for DatabaseClientImpl {
    fn database(&self) -> &Database {
        &self.db
    }
}

/// The in-process cache client (the original's go-cache `CacheDriver`, no longer a global).
pub trait CacheClient: Interface {
    /// The cache handle.
    fn cache(&self) -> &LocalCache;
}

/// [`CacheClient`] over a built [`LocalCache`].
#[derive(Component)]
#[shaku(interface = CacheClient)]
pub struct CacheClientImpl {
    cache: LocalCache,
}

impl CacheClient for CacheClientImpl {
    fn cache(&self) -> &LocalCache {
        &self.cache
    }
}

/// What the repositories ask MongoDB, as the `operation` label (the driver's method names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MongoOperation {
    /// `{ping: 1}` (readiness).
    Ping,
    /// `find_one`.
    FindOne,
    /// `replace_one` (with upsert).
    ReplaceOne,
    /// `create_index`.
    CreateIndex,
    /// `insert_one` (generated resources).
    InsertOne,
    /// `find` (a generated resource's page).
    Find,
    /// `find_one_and_update` (an id counter; a generated resource's change).
    FindOneAndUpdate,
    /// `delete_one` (generated resources).
    DeleteOne,
}

impl MongoOperation {
    const ALL: [MongoOperation; 8] = [
        MongoOperation::Ping,
        MongoOperation::FindOne,
        MongoOperation::ReplaceOne,
        MongoOperation::CreateIndex,
        MongoOperation::InsertOne,
        MongoOperation::Find,
        MongoOperation::FindOneAndUpdate,
        MongoOperation::DeleteOne,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            MongoOperation::Ping => "ping",
            MongoOperation::FindOne => "find_one",
            MongoOperation::ReplaceOne => "replace_one",
            MongoOperation::CreateIndex => "create_index",
            MongoOperation::InsertOne => "insert_one",
            MongoOperation::Find => "find",
            MongoOperation::FindOneAndUpdate => "find_one_and_update",
            MongoOperation::DeleteOne => "delete_one",
        }
    }
}

/// The handles of every [`MongoOperation`] (`mongodb_operation_duration_seconds` and
/// `mongodb_operation_errors_total`), looked up once when the module is built.
#[derive(Clone, Debug)]
pub struct MongoOperationMetrics([CallMetrics; MongoOperation::ALL.len()]);

impl MongoOperationMetrics {
    /// The handles of every operation, on `metrics`.
    pub fn new(metrics: &goex_metrics::Metrics) -> Self {
        Self(
            MongoOperation::ALL
                .map(|op| metrics.mongodb_operation(op.label(), &MongoError::OPERATION_KINDS)),
        )
    }
}

/// The MongoDB client, when `mongodb.enabled` (`None` otherwise: the document repository then
/// reports itself disabled).
pub trait MongoClientHandle: Interface {
    /// The client, if MongoDB is configured.
    fn client(&self) -> Option<&MongoClient>;
    /// The handles to time `operation` with (see [`goex_metrics::timed`]), when metrics are on.
    fn metrics(&self, operation: MongoOperation) -> Option<&CallMetrics>;
    /// The tracer: a span per operation of a sampled request.
    fn tracing(&self) -> &goex_tracing::Tracing;
}

/// [`MongoClientHandle`] over an optional built client.
#[derive(Component)]
#[shaku(interface = MongoClientHandle)]
pub struct MongoClientImpl {
    client: Option<MongoClient>,
    /// Latency and errors per operation, when metrics are on.
    metrics: Option<MongoOperationMetrics>,
    tracing: goex_tracing::Tracing,
}

impl MongoClientHandle for MongoClientImpl {
    fn client(&self) -> Option<&MongoClient> {
        self.client.as_ref()
    }

    fn metrics(&self, operation: MongoOperation) -> Option<&CallMetrics> {
        self.metrics.as_ref().map(|m| &m.0[operation as usize])
    }

    fn tracing(&self) -> &goex_tracing::Tracing {
        &self.tracing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_handles_are_indexed_by_discriminant() {
        for (i, operation) in MongoOperation::ALL.iter().enumerate() {
            assert_eq!(*operation as usize, i, "{operation:?}");
        }
    }
}
