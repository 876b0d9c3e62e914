//! Read-your-writes: after a session writes, its reads stay on the primary for
//! `mysql.read_your_writes`, so it never reads a replica that has not caught up with it.
//!
//! A session is a key the caller chooses (the HTTP app uses `X-Session-Id`, else the request
//! id) bound to the current task with [`scope`]; without a scope, reads are never pinned.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

tokio::task_local! {
    // Request-scoped context (like a tracing span), not shared state: each task sees only the
    // key of the request it is serving.
    static SESSION: Arc<str>;
}

/// Runs `fut` as session `key`.
pub fn scope<F: Future>(key: Arc<str>, fut: F) -> impl Future<Output = F::Output> {
    SESSION.scope(key, fut)
}

/// The current session key, if the task runs inside [`scope`].
pub fn current() -> Option<Arc<str>> {
    SESSION.try_with(Arc::clone).ok()
}

/// Sessions that wrote within the window.
pub(crate) struct RecentWrites {
    sessions: moka::sync::Cache<Arc<str>, ()>,
}

impl RecentWrites {
    /// `None` when the window is zero (the feature is off).
    pub(crate) fn new(window: Duration) -> Option<Self> {
        (!window.is_zero()).then(|| Self {
            sessions: moka::sync::Cache::builder()
                .time_to_live(window)
                .max_capacity(1_000_000)
                .build(),
        })
    }

    /// Records a write by the current session.
    pub(crate) fn wrote(&self) {
        if let Some(key) = current() {
            self.sessions.insert(key, ());
        }
    }

    /// Whether the current session wrote within the window.
    pub(crate) fn pinned(&self) -> bool {
        current().is_some_and(|key| self.sessions.contains_key(&key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_pins_only_its_own_session_for_the_window() {
        let recent = RecentWrites::new(Duration::from_millis(100)).unwrap();
        assert!(!recent.pinned(), "no scope, never pinned");
        scope("a".into(), async { recent.wrote() }).await;
        assert!(scope("a".into(), async { recent.pinned() }).await);
        assert!(!scope("b".into(), async { recent.pinned() }).await);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            !scope("a".into(), async { recent.pinned() }).await,
            "window passed"
        );
        assert!(RecentWrites::new(Duration::ZERO).is_none());
    }
}
