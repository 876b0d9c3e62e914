//! Client components: the pools and clients built by `assembly::infra`, handed to the module as
//! component parameters so repositories receive them by injection (wire's `NewMysqlGroupClient`).

use goex_cache::LocalCache;
use goex_database::Database;
use goex_mongo::MongoClient;
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

/// The MongoDB client, when `mongodb.enabled` (`None` otherwise: the document repository then
/// reports itself disabled).
pub trait MongoClientHandle: Interface {
    /// The client, if MongoDB is configured.
    fn client(&self) -> Option<&MongoClient>;
}

/// [`MongoClientHandle`] over an optional built client.
#[derive(Component)]
#[shaku(interface = MongoClientHandle)]
pub struct MongoClientImpl {
    client: Option<MongoClient>,
}

impl MongoClientHandle for MongoClientImpl {
    fn client(&self) -> Option<&MongoClient> {
        self.client.as_ref()
    }
}
