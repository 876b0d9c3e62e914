//! CPU profiles of the running process (the original's pprof/fgprof listener): sampled with the
//! `pprof` crate and rendered as pprof protobuf (for `go tool pprof` or `pprof`) or a flamegraph SVG.

use std::time::Duration;

use prost::Message;
use serde::Deserialize;

mod proto;

/// The `pprof` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Serve the debug listener. Ignored (always off) in the prod profile.
    pub enabled: bool,
    /// Where the debug listener binds; must be a loopback address unless `allow_remote`.
    pub addr: String,
    /// Accept a non-loopback `addr` (profiles expose code paths and timings, and anyone who
    /// reaches the listener can make the process sample itself): off by default.
    pub allow_remote: bool,
    /// Longest profile one request may ask for.
    pub max_seconds: u64,
    /// Samples per second.
    pub frequency: i32,
}

/// The output format of a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// pprof's `profile.proto`, uncompressed.
    Protobuf,
    /// An interactive SVG flamegraph.
    Flamegraph,
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum ProfilingError {
    /// Another profile is being taken; the sampler is process-wide.
    #[error("a profile is already being taken")]
    Busy,
    /// The sampler or the renderer failed.
    #[error("profiling failed: {0}")]
    Failed(String),
}

const EMPTY_SVG: &str = "<?xml version=\"1.0\" standalone=\"no\"?>\
<svg version=\"1.1\" width=\"1200\" height=\"60\" xmlns=\"http://www.w3.org/2000/svg\">\
<text x=\"10\" y=\"35\" font-family=\"monospace\" font-size=\"16\">\
No samples: the process used no CPU while it was profiled. Profile under load.</text></svg>\n";

/// Samples the whole process for `duration` and renders the result.
///
/// # Errors
/// [`ProfilingError::Busy`] while another profile runs; [`ProfilingError::Failed`] otherwise.
pub async fn cpu_profile(
    duration: Duration,
    frequency: i32,
    format: Format,
) -> Result<Vec<u8>, ProfilingError> {
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(frequency.max(1))
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| match e {
            pprof::Error::CreatingError => ProfilingError::Busy,
            other => ProfilingError::Failed(other.to_string()),
        })?;
    tokio::time::sleep(duration).await;
    let report = guard
        .report()
        .build()
        .map_err(|e| ProfilingError::Failed(e.to_string()))?;
    drop(guard);
    let mut out = Vec::new();
    match format {
        Format::Protobuf => {
            proto::profile(&report)
                .encode(&mut out)
                .map_err(|e| ProfilingError::Failed(e.to_string()))?;
        }
        Format::Flamegraph if report.data.is_empty() => {
            // inferno renders nothing for an empty profile; say why instead of an empty body.
            out.extend_from_slice(EMPTY_SVG.as_bytes());
        }
        Format::Flamegraph => {
            report
                .flamegraph(&mut out)
                .map_err(|e| ProfilingError::Failed(e.to_string()))?;
        }
    }
    Ok(out)
}
