//! The tower [`Layer`] and [`Service`] that put a [`Breaker`] in front of a client, the outcome
//! classifier, and the error a refused or cut-off call ends with.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::breaker::{Breaker, Completion, Permit, Rejection};
use crate::clock::Sleep;

/// What a finished call says about the backend's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The backend did its job.
    Success,
    /// The backend failed (unavailable, internal error, ...): counts against it.
    Failure,
    /// Not the backend's fault, but it answered (a gRPC `InvalidArgument`, `NotFound`,
    /// `Unauthenticated`, ...). `hystrix` leaves it out of the error percentage and closes on an
    /// ignored probe; `sre` counts it as accepted.
    Ignored,
}

/// Decides the [`Outcome`] of a call from its result.
///
/// Any `Fn(&Result<T, E>) -> Outcome` is one; [`OkIsSuccess`] is the default.
pub trait Classify<T, E> {
    /// The outcome of `result`.
    fn classify(&self, result: &Result<T, E>) -> Outcome;
}

impl<T, E, F> Classify<T, E> for F
where
    F: Fn(&Result<T, E>) -> Outcome,
{
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self(result)
    }
}

/// The default classifier: `Ok` is a success, `Err` a failure.
#[derive(Clone, Copy, Debug, Default)]
pub struct OkIsSuccess;

impl<T, E> Classify<T, E> for OkIsSuccess {
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// How a call through a [`BreakerService`] failed. Every variant but `Inner` means the breaker
/// answered in the backend's stead; the caller should degrade visibly (an error or a documented
/// fallback), never invent a success.
///
/// It is an [`Error`](std::error::Error) (and so converts into tower's `BoxError`) when `E` is
/// one. A `Box<dyn Error>` is not itself an `Error`, so put the breaker inside (nearer the
/// client than) any layer that boxes errors, or map the inner error to a concrete type first.
#[derive(Debug, thiserror::Error)]
pub enum BreakerError<E> {
    /// `hystrix`: the breaker is open (or half-open with its one probe out); the call was not
    /// made.
    #[error("circuit breaker open: the call was not made")]
    Open,
    /// `max_concurrent_requests` calls were already in flight; the call was not made.
    #[error("too many concurrent calls: the call was not made")]
    Rejected,
    /// `sre`: the adaptive throttle dropped the call locally; it was not made.
    #[error("adaptive throttle dropped the call: it was not made")]
    Throttled,
    /// The call ran longer than `timeout` and was cut off; the backend may still have acted on it.
    #[error("the call timed out and was cut off")]
    Timeout,
    /// The inner service's own error, unchanged.
    #[error(transparent)]
    Inner(E),
}

impl<E> BreakerError<E> {
    /// Whether the breaker refused the call before it reached the backend (`Open`, `Rejected`,
    /// `Throttled`): such a call is safe to retry elsewhere.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            BreakerError::Open | BreakerError::Rejected | BreakerError::Throttled
        )
    }

    /// The inner service's error, if that is what this is.
    pub fn inner(&self) -> Option<&E> {
        match self {
            BreakerError::Inner(e) => Some(e),
            _ => None,
        }
    }

    /// The inner service's error, if that is what this is.
    pub fn into_inner(self) -> Option<E> {
        match self {
            BreakerError::Inner(e) => Some(e),
            _ => None,
        }
    }

    fn from_rejection(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Open => BreakerError::Open,
            Rejection::Rejected => BreakerError::Rejected,
            Rejection::Throttled => BreakerError::Throttled,
        }
    }
}

/// The tower layer: wraps a service in a [`BreakerService`] sharing one [`Breaker`].
#[derive(Clone, Debug)]
pub struct BreakerLayer<C = OkIsSuccess> {
    breaker: Breaker,
    classifier: C,
}

impl BreakerLayer {
    /// A layer for `breaker` with the default classifier ([`OkIsSuccess`]).
    pub fn new(breaker: Breaker) -> Self {
        BreakerLayer {
            breaker,
            classifier: OkIsSuccess,
        }
    }
}

impl<C> BreakerLayer<C> {
    /// The same layer with another classifier, e.g. one that calls client-side gRPC codes
    /// [`Outcome::Ignored`].
    pub fn with_classifier<C2>(self, classifier: C2) -> BreakerLayer<C2> {
        BreakerLayer {
            breaker: self.breaker,
            classifier,
        }
    }

    /// The breaker this layer shares.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }
}

impl<S, C: Clone> Layer<S> for BreakerLayer<C> {
    type Service = BreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        BreakerService {
            inner,
            breaker: self.breaker.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl Breaker {
    /// A tower layer guarding a service with this breaker and the default classifier.
    pub fn layer(&self) -> BreakerLayer {
        BreakerLayer::new(self.clone())
    }
}

/// A service guarded by a [`Breaker`]; clones share the breaker.
///
/// `poll_ready` is the inner service's (its errors are passed on as [`BreakerError::Inner`] and
/// not counted: no call was made). The decision to let a call out, and its concurrency slot,
/// are taken in `call`, so a readiness that is never followed by a call holds nothing.
#[derive(Clone, Debug)]
pub struct BreakerService<S, C = OkIsSuccess> {
    inner: S,
    breaker: Breaker,
    classifier: C,
}

impl<S, C> BreakerService<S, C> {
    /// Guards `inner` with `breaker`, classifying outcomes with `classifier`.
    pub fn new(inner: S, breaker: Breaker, classifier: C) -> Self {
        BreakerService {
            inner,
            breaker,
            classifier,
        }
    }

    /// The breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, Req> Service<Req> for BreakerService<S, C>
where
    S: Service<Req>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BreakerError<S::Error>;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(BreakerError::Inner)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let kind = match self.breaker.admit() {
            Ok(permit) => Kind::Running {
                // The timer starts before the inner call, so time spent in it counts.
                sleep: self.breaker.clock().sleep(self.breaker.settings().timeout),
                future: self.inner.call(request),
                permit: Some(permit),
                classifier: self.classifier.clone(),
            },
            Err(rejection) => Kind::Refused { rejection },
        };
        ResponseFuture { kind }
    }
}

pin_project! {
    /// The future of a [`BreakerService`] call.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Refused { rejection: Rejection },
        Running {
            #[pin]
            future: F,
            sleep: Sleep,
            // Taken when the outcome is counted; dropped (abandoned) with the future otherwise.
            permit: Option<Permit>,
            classifier: C,
        },
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    C: Classify<T, E>,
{
    type Output = Result<T, BreakerError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Refused { rejection } => {
                Poll::Ready(Err(BreakerError::from_rejection(*rejection)))
            }
            KindProj::Running {
                future,
                sleep,
                permit,
                classifier,
            } => {
                // The inner future first: a result that is ready when the timer fires wins.
                if let Poll::Ready(result) = future.poll(cx) {
                    if let Some(permit) = permit.take() {
                        let completion = match classifier.classify(&result) {
                            Outcome::Success => Completion::Success,
                            Outcome::Failure => Completion::Failure,
                            Outcome::Ignored => Completion::Ignored,
                        };
                        permit.finish(completion);
                    }
                    return Poll::Ready(result.map_err(BreakerError::Inner));
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    if let Some(permit) = permit.take() {
                        permit.finish(Completion::Timeout);
                    }
                    return Poll::Ready(Err(BreakerError::Timeout));
                }
                Poll::Pending
            }
        }
    }
}
