//! `go_example version`.

/// The version line.
pub fn text() -> String {
    format!(
        "{} {} (rustc {}+, {} {})",
        crate::meta::APP_NAME,
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_RUST_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
}
