//! CPU profiles of this process (the original's pprof), for the debug listener: the one user of
//! `goex_profiling`, so neither `server/` nor a controller names the sampler.

use std::time::Duration;

use async_trait::async_trait;
use goex_profiling::{Format, ProfilingError, Settings};
use shaku::{Component, Interface};

use crate::service::error::ServiceError;

/// What a profile is rendered as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileFormat {
    /// pprof's `profile.proto`, uncompressed (for `pprof -http` or `go tool pprof`).
    Protobuf,
    /// An interactive SVG flamegraph.
    Flamegraph,
}

/// Profiles the whole process on request.
#[async_trait]
pub trait ProfilingService: Interface {
    /// Samples the process for `seconds` and renders the samples as `format`.
    ///
    /// # Errors
    /// [`ServiceError::InvalidInput`] when `seconds` is over `pprof.max_seconds` or another
    /// profile is being taken (the sampler is process-wide); [`ServiceError::Internal`] when
    /// the sampler or the renderer fails.
    async fn cpu_profile(
        &self,
        seconds: u64,
        format: ProfileFormat,
    ) -> Result<Vec<u8>, ServiceError>;
}

/// [`ProfilingService`] over `goex_profiling`, limited by the `pprof` section.
#[derive(Component)]
#[shaku(interface = ProfilingService)]
pub struct ProfilingServiceImpl {
    settings: Settings,
}

#[async_trait]
impl ProfilingService for ProfilingServiceImpl {
    async fn cpu_profile(
        &self,
        seconds: u64,
        format: ProfileFormat,
    ) -> Result<Vec<u8>, ServiceError> {
        if seconds > self.settings.max_seconds {
            return Err(ServiceError::invalid(
                "seconds",
                format!("must be at most {}", self.settings.max_seconds),
            ));
        }
        let format = match format {
            ProfileFormat::Protobuf => Format::Protobuf,
            ProfileFormat::Flamegraph => Format::Flamegraph,
        };
        goex_profiling::cpu_profile(
            Duration::from_secs(seconds),
            self.settings.frequency,
            format,
        )
        .await
        .map_err(|e| match e {
            ProfilingError::Busy => {
                ServiceError::invalid("seconds", "another profile is being taken")
            }
            other => ServiceError::Internal(Box::new(other)),
        })
    }
}
