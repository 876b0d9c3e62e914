//! The breaker as a tower layer in a `ServiceBuilder` stack over a scripted `service_fn` that
//! fails on demand, driven through `ServiceExt` as a client would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use goex_breaker::{Breaker, BreakerError, Outcome, Settings, State};
use tower::{BoxError, Service, ServiceBuilder, ServiceExt, service_fn};

use crate::support::{BackendError, changes, manual_breaker, ms};

/// A backend that answers `Ok(n * 2)` while healthy and fails (as unavailable, or with the
/// caller's fault for odd requests when `blame_caller` is set) when not; counts its calls.
struct Backend {
    healthy: AtomicBool,
    blame_caller: AtomicBool,
    calls: AtomicUsize,
}

fn backend() -> (
    Arc<Backend>,
    impl Service<u32, Response = u32, Error = BackendError, Future: Send> + Clone + Send,
) {
    let state = Arc::new(Backend {
        healthy: AtomicBool::new(true),
        blame_caller: AtomicBool::new(false),
        calls: AtomicUsize::new(0),
    });
    let s = Arc::clone(&state);
    let svc = service_fn(move |n: u32| {
        s.calls.fetch_add(1, Ordering::SeqCst);
        let result = if s.blame_caller.load(Ordering::SeqCst) {
            Err(BackendError::InvalidArgument)
        } else if s.healthy.load(Ordering::SeqCst) {
            Ok(n * 2)
        } else {
            Err(BackendError::Unavailable)
        };
        async move { result }
    });
    (state, svc)
}

#[tokio::test]
async fn a_failing_backend_is_cut_off_and_let_back_in_through_a_probe() {
    let (breaker, clock, log) = manual_breaker(&Settings::default());
    let (state, inner) = backend();
    let mut client = ServiceBuilder::new().layer(breaker.layer()).service(inner);

    for n in 0..3 {
        assert_eq!(client.ready().await.unwrap().call(n).await.unwrap(), n * 2);
    }
    state.healthy.store(false, Ordering::SeqCst);
    // 3 successes + 7 failures = 10 requests, 70 % errors: trips on the 7th failure.
    for _ in 0..7 {
        let err = client.ready().await.unwrap().call(1).await.unwrap_err();
        assert!(matches!(
            err,
            BreakerError::Inner(BackendError::Unavailable)
        ));
    }
    assert_eq!(breaker.state(), State::Open);
    for _ in 0..20 {
        let err = client.clone().oneshot(1).await.unwrap_err();
        assert!(matches!(err, BreakerError::Open) && err.is_refusal());
    }
    assert_eq!(
        state.calls.load(Ordering::SeqCst),
        10,
        "nothing reached the backend"
    );

    state.healthy.store(true, Ordering::SeqCst);
    clock.advance(ms(5000));
    assert_eq!(client.ready().await.unwrap().call(21).await.unwrap(), 42);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(
        changes(&log),
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed),
        ]
    );
}

#[tokio::test]
async fn a_classifier_keeps_the_callers_errors_from_tripping_it() {
    let (breaker, _clock, _) = manual_breaker(&Settings::default());
    let (state, inner) = backend();
    let classify = |r: &Result<u32, BackendError>| match r {
        Ok(_) => Outcome::Success,
        Err(BackendError::InvalidArgument) => Outcome::Ignored,
        Err(BackendError::Unavailable) => Outcome::Failure,
    };
    let client = ServiceBuilder::new()
        .layer(breaker.layer().with_classifier(classify))
        .service(inner);
    state.blame_caller.store(true, Ordering::SeqCst);
    for _ in 0..30 {
        let err = client.clone().oneshot(1).await.unwrap_err();
        assert!(matches!(err.inner(), Some(BackendError::InvalidArgument)));
    }
    let snap = breaker.snapshot();
    assert_eq!((snap.state, snap.window.ignored), (State::Closed, 30));
}

#[tokio::test]
async fn errors_read_plainly_and_box_as_tower_errors() {
    let (breaker, _clock, _) = manual_breaker(&Settings::default());
    let (state, inner) = backend();
    state.healthy.store(false, Ordering::SeqCst);
    // Outside the breaker, errors boxed as tonic's generated clients and most layers want.
    let client = ServiceBuilder::new()
        .map_err(BoxError::from)
        .layer(breaker.layer())
        .service(inner);
    let err = client.clone().oneshot(1).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "backend unavailable",
        "Inner is transparent"
    );
    let typed = err.downcast_ref::<BreakerError<BackendError>>().unwrap();
    assert!(!typed.is_refusal());
    for _ in 0..9 {
        let _ = client.clone().oneshot(1).await;
    }
    let err = client.clone().oneshot(1).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "circuit breaker open: the call was not made"
    );
    assert!(err.source().is_none());
    let typed = err.downcast::<BreakerError<BackendError>>().unwrap();
    assert!(matches!(*typed, BreakerError::Open));
    assert_eq!(
        BreakerError::<BackendError>::Timeout.to_string(),
        "the call timed out and was cut off"
    );
}

/// An inner service whose readiness fails once.
#[derive(Clone)]
struct FlakyReady {
    failed: Arc<AtomicBool>,
}

impl Service<u32> for FlakyReady {
    type Response = u32;
    type Error = BackendError;
    type Future = std::future::Ready<Result<u32, BackendError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BackendError>> {
        if self.failed.swap(true, Ordering::SeqCst) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Ready(Err(BackendError::Unavailable))
        }
    }

    fn call(&mut self, n: u32) -> Self::Future {
        std::future::ready(Ok(n))
    }
}

#[tokio::test]
async fn readiness_errors_pass_through_uncounted() {
    let breaker = Breaker::new("ready", &Settings::default()).unwrap();
    let flaky = FlakyReady {
        failed: Arc::default(),
    };
    let mut client = tower::Layer::layer(&breaker.layer(), flaky);
    let err = client.ready().await.err().unwrap();
    assert!(matches!(
        err,
        BreakerError::Inner(BackendError::Unavailable)
    ));
    assert_eq!(client.ready().await.unwrap().call(4).await.unwrap(), 4);
    let snap = breaker.snapshot();
    assert_eq!((snap.window.failures, snap.window.successes), (0, 1));
}

#[test]
fn the_types_an_application_shares_are_send_and_sync() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn boxes<E: Into<BoxError>>() {}
    send_sync::<Breaker>();
    send_sync::<goex_breaker::BreakerLayer>();
    send_sync::<goex_breaker::Snapshot>();
    send_sync::<BreakerError<std::io::Error>>();
    boxes::<BreakerError<std::io::Error>>();
}
