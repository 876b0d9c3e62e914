//! `metrics.*` and `pprof.*`: the listeners that observe the process (their settings types
//! live in `goex_metrics` and `goex_profiling`; what this app requires of them is here).

use goex_config::{ConfigError, invalid};

use super::parse_addr;

/// `metrics.*`: its addresses are looked at only when metrics are on.
pub(super) fn check_metrics(metrics: &goex_metrics::Settings) -> Result<(), ConfigError> {
    if metrics.enabled {
        parse_addr(&metrics.addr).map_err(|m| invalid("metrics.addr", m))?;
        parse_addr(&metrics.socket_addr).map_err(|m| invalid("metrics.socket_addr", m))?;
        parse_addr(&metrics.grpc_addr).map_err(|m| invalid("metrics.grpc_addr", m))?;
    }
    Ok(())
}

/// `pprof.*`: the profiler stays on loopback unless `allow_remote` says otherwise.
pub(super) fn check_pprof(pprof: &goex_profiling::Settings) -> Result<(), ConfigError> {
    if pprof.enabled {
        let addr = parse_addr(&pprof.addr).map_err(|m| invalid("pprof.addr", m))?;
        if !addr.ip().is_loopback() && !pprof.allow_remote {
            return Err(invalid(
                "pprof.addr",
                format!(
                    "`{}` is not a loopback address (127.0.0.1:port, [::1]:port); anyone who \
                     reaches it can profile the process (set pprof.allow_remote to accept it)",
                    pprof.addr
                ),
            ));
        }
    }
    Ok(())
}
