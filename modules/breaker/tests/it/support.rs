//! Shared test doubles: a scripted backend, a manual-clock breaker and a poll-once helper.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use goex_breaker::{Breaker, BreakerService, ManualClock, OkIsSuccess, Outcome, Settings, State};
use tokio::sync::oneshot;
use tower::util::BoxCloneService;
use tower::{Service, ServiceExt, service_fn};

/// The backend's errors: one that is its fault and one that is the caller's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("backend unavailable")]
    Unavailable,
    #[error("invalid argument")]
    InvalidArgument,
}

/// What the scripted backend does with one request.
pub enum Script {
    /// Answers at once.
    Now(Result<u32, BackendError>),
    /// Answers when the sender sends (or fails as unavailable if it is dropped).
    Later(oneshot::Receiver<Result<u32, BackendError>>),
    /// Never answers.
    Never,
}

pub type BoxFuture = Pin<Box<dyn Future<Output = Result<u32, BackendError>> + Send>>;

/// The scripted backend as a boxed service (so its futures are `Unpin`).
pub fn backend()
-> impl Service<Script, Response = u32, Error = BackendError, Future = BoxFuture> + Clone {
    service_fn(|script: Script| -> BoxFuture {
        Box::pin(async move {
            match script {
                Script::Now(result) => result,
                Script::Later(rx) => rx.await.unwrap_or(Err(BackendError::Unavailable)),
                Script::Never => std::future::pending().await,
            }
        })
    })
}

pub type Transitions = Arc<Mutex<Vec<(String, State, State)>>>;

/// A breaker on a manual clock that records its transitions.
pub fn manual_breaker(settings: &Settings) -> (Breaker, ManualClock, Transitions) {
    let clock = ManualClock::new();
    let transitions: Transitions = Arc::default();
    let log = Arc::clone(&transitions);
    let breaker = Breaker::builder("test.Method", settings)
        .clock(clock.clone())
        .observer(move |name: &str, from, to| log.lock().unwrap().push((name.to_owned(), from, to)))
        .build()
        .expect("valid settings");
    (breaker, clock, transitions)
}

/// The transitions recorded so far, without the name.
pub fn changes(t: &Transitions) -> Vec<(State, State)> {
    t.lock()
        .unwrap()
        .iter()
        .map(|(_, f, to)| (*f, *to))
        .collect()
}

pub type Guarded<C = OkIsSuccess> = BreakerService<BoxCloneService<Script, u32, BackendError>, C>;

/// A classifier as a plain function, so the guarded service's type can be named.
pub type Classifier = fn(&Result<u32, BackendError>) -> Outcome;

/// Failures are the backend's; `InvalidArgument` is the caller's (ignored).
pub fn grpc_like(result: &Result<u32, BackendError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Success,
        Err(BackendError::InvalidArgument) => Outcome::Ignored,
        Err(BackendError::Unavailable) => Outcome::Failure,
    }
}

/// The scripted backend guarded by `breaker` with the default classifier.
pub fn guarded(breaker: &Breaker) -> Guarded {
    guarded_with(breaker, OkIsSuccess)
}

/// The scripted backend guarded by `breaker` with `classifier`.
pub fn guarded_with<C>(breaker: &Breaker, classifier: C) -> Guarded<C> {
    BreakerService::new(BoxCloneService::new(backend()), breaker.clone(), classifier)
}

/// Polls `future` once with a waker that does nothing (the manual clock needs no wake-ups).
pub fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

/// Calls `svc` as tower's contract wants (ready first) without a runtime: the backend is always
/// ready, so readiness resolves on the first poll.
pub fn call_now<S, R>(svc: &mut S, req: R) -> S::Future
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    let mut ready = svc.ready();
    match poll_once(&mut ready) {
        Poll::Ready(r) => {
            r.expect("ready");
        }
        Poll::Pending => panic!("the scripted backend is always ready"),
    }
    svc.call(req)
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
