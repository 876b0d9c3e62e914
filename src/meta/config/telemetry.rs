//! `metrics.*`, `pprof.*` and `tracing.*`: what observes the process (their settings types
//! live in `goex_metrics`, `goex_profiling` and `goex_tracing`; what this app requires of them
//! is here, with the `OTEL_*` variables mapped onto `tracing.*`).

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

/// The standard OpenTelemetry variables the SDK would read itself, mapped onto `tracing.*`
/// (the SDK is given every value explicitly, so it reads none): an `APP__TRACING__...`
/// variable for the same key wins.
pub(super) const ENV_ALIASES: &[goex_config::Alias] = &[
    goex_config::Alias {
        var: "OTEL_EXPORTER_OTLP_ENDPOINT",
        keys: &["tracing.endpoint"],
    },
    goex_config::Alias {
        var: "OTEL_SERVICE_NAME",
        // Each process reads its own.
        keys: &[
            "tracing.service_name.http",
            "tracing.service_name.grpc",
            "tracing.service_name.socket",
        ],
    },
    goex_config::Alias {
        var: "OTEL_RESOURCE_ATTRIBUTES",
        keys: &["tracing.resource_attributes"],
    },
];

/// `tracing.*`: looked at only when tracing is on, so a disabled section never stops a start.
pub(super) fn check_tracing(tracing: &goex_tracing::Settings) -> Result<(), ConfigError> {
    if !tracing.enabled {
        return Ok(());
    }
    goex_tracing::parse_endpoint(&tracing.endpoint).map_err(|m| invalid("tracing.endpoint", m))?;
    if !(0.0..=1.0).contains(&tracing.sample_ratio) {
        return Err(invalid(
            "tracing.sample_ratio",
            format!("{} is not between 0 and 1", tracing.sample_ratio),
        ));
    }
    tracing
        .resource_attributes
        .parse()
        .map_err(|m| invalid("tracing.resource_attributes", m))?;
    for (key, name) in [
        ("tracing.service_name.http", &tracing.service_name.http),
        ("tracing.service_name.grpc", &tracing.service_name.grpc),
        ("tracing.service_name.socket", &tracing.service_name.socket),
    ] {
        if name.trim().is_empty() {
            return Err(invalid(key, "must not be empty"));
        }
    }
    super::refuse_zero(&[
        ("tracing.export_timeout", tracing.export_timeout.is_zero()),
        (
            "tracing.shutdown_timeout",
            tracing.shutdown_timeout.is_zero(),
        ),
        ("tracing.batch_size", tracing.batch_size == 0),
        ("tracing.queue_size", tracing.queue_size == 0),
        ("tracing.scheduled_delay", tracing.scheduled_delay.is_zero()),
    ])?;
    if tracing.queue_size > goex_tracing::QUEUE_SIZE_MAX {
        return Err(invalid(
            "tracing.queue_size",
            format!(
                "{} is more than {}: the whole queue is allocated at start",
                tracing.queue_size,
                goex_tracing::QUEUE_SIZE_MAX
            ),
        ));
    }
    if tracing.batch_size > tracing.queue_size {
        return Err(invalid(
            "tracing.batch_size",
            format!(
                "{} is more than tracing.queue_size ({}): a batch is taken from the queue",
                tracing.batch_size, tracing.queue_size
            ),
        ));
    }
    Ok(())
}
