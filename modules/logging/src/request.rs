//! The request a task is serving, for every log record written while it runs: the HTTP
//! lifecycle middleware runs each request inside [`scope`], and loggers carrying [`kv`] add
//! `request_id` to each record made in that scope — in handlers, services, repositories and
//! libraries logging through `log` alike — and nothing outside one.

use std::future::Future;
use std::sync::Arc;

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// Runs `future` as the request `id`.
pub fn scope<F: Future>(id: Arc<str>, future: F) -> impl Future<Output = F::Output> {
    REQUEST_ID.scope(id, future)
}

/// The id of the request the current task serves, if any.
pub fn current() -> Option<Arc<str>> {
    REQUEST_ID.try_with(Arc::clone).ok()
}

/// The `request_id` of the current request, as a logger value: emitted only inside [`scope`].
#[derive(Clone, Copy, Debug)]
pub struct CurrentRequestId;

impl slog::Value for CurrentRequestId {
    fn serialize(
        &self,
        _record: &slog::Record<'_>,
        key: slog::Key,
        serializer: &mut dyn slog::Serializer,
    ) -> slog::Result {
        REQUEST_ID
            .try_with(|id| serializer.emit_str(key, id))
            .unwrap_or(Ok(()))
    }
}

/// The key-value pair that gives a logger's records the current request id.
pub fn kv() -> slog::OwnedKV<(slog::SingleKV<CurrentRequestId>, ())> {
    slog::o!("request_id" => CurrentRequestId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_id_is_there_inside_the_scope_only() {
        assert!(current().is_none());
        let seen = scope("r-1".into(), async {
            tokio::task::yield_now().await;
            current()
        })
        .await;
        assert_eq!(seen.as_deref(), Some("r-1"));
        assert!(current().is_none());
    }
}
