//! The overload benchmark's unit of work (`GET /debug/burn`, `bench.Burn`): CPU burned in
//! slices with a yield between them. Stateless, so a function rather than a component: both
//! transports call the same one, with the same bounds.

use std::time::{Duration, Instant};

use crate::service::error::ServiceError;

/// The most CPU one call may burn, in milliseconds: enough for a slow request, bounded so a
/// typo cannot hold a worker for long.
pub const MAX_MS: u32 = 100;

/// How many pieces a burn is cut into, with a yield between them: 100 µs each for 1 ms.
pub const SLICES: u32 = 10;

/// Burns `ms` milliseconds of this worker's CPU in [`SLICES`] slices, yielding to the runtime
/// between them, and answers `ms`. Busy work with yields (rather than one block) lets many
/// requests be in flight on one worker at once, as real handlers that await between
/// computations are, so the shedder sees in-flight counts above its capacity estimate. Time is
/// measured on the wall clock: the benchmark pins the server to a core of its own, where the
/// two agree.
///
/// # Errors
/// `InvalidInput` (400 / 10000, `INVALID_ARGUMENT`) for `ms` outside `1..=MAX_MS`.
pub async fn burn(ms: u32) -> Result<u32, ServiceError> {
    if !(1..=MAX_MS).contains(&ms) {
        return Err(ServiceError::invalid(
            "ms",
            format!("must be 1 to {MAX_MS}"),
        ));
    }
    let slice = Duration::from_millis(u64::from(ms)) / SLICES;
    for _ in 0..SLICES {
        let started = Instant::now();
        while started.elapsed() < slice {
            std::hint::spin_loop();
        }
        tokio::task::yield_now().await;
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    use super::{MAX_MS, SLICES, burn};
    use crate::service::error::ServiceError;

    #[tokio::test(flavor = "current_thread")]
    async fn a_burn_yields_between_its_slices_so_other_work_runs_on_the_same_thread() {
        // Another future beside the burn, on the same thread: it runs once per yield of the
        // burn. A burn in one block would let it run once, before or after.
        let done = Cell::new(false);
        let turns = Cell::new(0_u32);
        let other = async {
            while !done.get() {
                turns.set(turns.get() + 1);
                tokio::task::yield_now().await;
            }
        };
        let started = Instant::now();
        let (burned, ()) = futures_util::future::join(
            async {
                let burned = burn(2).await;
                done.set(true);
                burned
            },
            other,
        )
        .await;
        assert_eq!(burned.unwrap(), 2);
        assert!(started.elapsed() >= Duration::from_millis(2));
        assert!(
            (SLICES..=SLICES + 1).contains(&turns.get()),
            "the other future ran {} times during a burn of {SLICES} slices",
            turns.get()
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_burn_outside_1_to_the_maximum_is_invalid_input() {
        for ms in [0, MAX_MS + 1, u32::MAX] {
            let refused = burn(ms).await.unwrap_err();
            assert!(
                matches!(&refused, ServiceError::InvalidInput { field, .. } if field == "ms"),
                "{ms}: {refused:?}"
            );
        }
        assert_eq!(burn(MAX_MS).await.unwrap(), MAX_MS);
    }
}
