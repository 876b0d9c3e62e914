//! The consistency session of a request: what it reads sees what it wrote (read-your-writes
//! when the database has replicas, docs/database.md). The edge binds each request to its
//! session key here; the database client routes the reads by it, so nothing above the
//! repositories names the client crate.

use std::future::Future;
use std::sync::Arc;

/// Runs `fut` (the serving of one request) as the consistency session `key`: reads made inside
/// it go to the primary for a while after the session wrote. Without a scope, reads are never
/// pinned.
pub fn scope<F: Future>(key: Arc<str>, fut: F) -> impl Future<Output = F::Output> {
    goex_database::session::scope(key, fut)
}
