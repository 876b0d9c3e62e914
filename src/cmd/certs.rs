//! `go_example certs generate`: a CA, a server and a client certificate for the gRPC app
//! (rcgen, in `goex-certs`), replacing the original's openssl steps.

use std::path::Path;

use anyhow::Context;

/// Writes the set under `out` with `sans` (the default names when empty) valid for `days`,
/// and says how to use it.
///
/// # Errors
/// A bad name, an existing set in `out`, or a file that cannot be written.
pub fn generate(out: &Path, sans: &[String], days: u32) -> anyhow::Result<String> {
    let sans: Vec<String> = if sans.is_empty() {
        goex_certs::DEFAULT_SANS
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    } else {
        sans.to_vec()
    };
    let written = goex_certs::generate(out, &sans, days)
        .with_context(|| format!("generating certificates in {}", out.display()))?;
    Ok(format!(
        "wrote {ca}, {sc}/{sk} (server: {names}), {cc}/{ck} (client) and {cak} to {dir}, valid {days} days\n\n\
         # configs/<env>/common.yaml\nserver:\n  grpc:\n    tls:\n      dir: {dir}\n\n\
         # or from the environment\nAPP__SERVER__GRPC__TLS__DIR={dir}\n\n\
         Move {cak} out of {dir} (offline) before the apps use the folder: it signs certificates \
         both sides trust, and the apps warn while it is there.\n",
        ca = goex_certs::CA_CERT,
        sc = goex_certs::SERVER_CERT,
        sk = goex_certs::SERVER_KEY,
        cc = goex_certs::CLIENT_CERT,
        ck = goex_certs::CLIENT_KEY,
        cak = goex_certs::CA_KEY,
        names = written.sans.join(", "),
        dir = written.dir.display(),
    ))
}
