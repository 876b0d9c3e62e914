//! `go_example certs generate`: a CA, a server and a client certificate for the gRPC app
//! (rcgen, in `goex-certs`), replacing the original's openssl steps.

use std::path::Path;

use anyhow::Context;

/// What `generate` does when what it would write exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Refuse (the default: an operator running it by hand wants to know).
    Refuse,
    /// Keep it and succeed (`--if-missing`: an init step run at every start).
    Keep,
}

impl Existing {
    /// [`Existing::Keep`] when `if_missing`.
    pub fn keep_if(if_missing: bool) -> Self {
        if if_missing { Self::Keep } else { Self::Refuse }
    }
}

/// Writes the set under `out` with `sans` (the default names when empty) valid for `days`,
/// and says how to use it; with `discard_ca_key` the CA's key is dropped once it has signed.
///
/// # Errors
/// A bad name, an existing set in `out` (unless `existing` keeps it), or a file that cannot
/// be written.
pub fn generate(
    out: &Path,
    sans: &[String],
    days: u32,
    existing: Existing,
    discard_ca_key: bool,
) -> anyhow::Result<String> {
    if existing == Existing::Keep && out.join(goex_certs::CA_CERT).exists() {
        return Ok(format!(
            "kept the certificates in {} (--if-missing)\n",
            out.display()
        ));
    }
    let sans: Vec<String> = if sans.is_empty() {
        goex_certs::DEFAULT_SANS
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    } else {
        sans.to_vec()
    };
    let written = if discard_ca_key {
        goex_certs::generate_without_ca_key(out, &sans, days)
    } else {
        goex_certs::generate(out, &sans, days)
    }
    .with_context(|| format!("generating certificates in {}", out.display()))?;
    let wrote = format!(
        "wrote {ca}, {sc}/{sk} (server: {names}) and {cc}/{ck} (client)",
        ca = goex_certs::CA_CERT,
        sc = goex_certs::SERVER_CERT,
        sk = goex_certs::SERVER_KEY,
        cc = goex_certs::CLIENT_CERT,
        ck = goex_certs::CLIENT_KEY,
        names = written.sans.join(", "),
    );
    let dir = written.dir.display();
    if discard_ca_key {
        return Ok(format!(
            "{wrote} to {dir}, valid {days} days; the CA's key was dropped\n"
        ));
    }
    Ok(format!(
        "{wrote}, and {cak} to {dir}, valid {days} days\n\n\
         # configs/<env>/common.yaml\nserver:\n  grpc:\n    tls:\n      dir: {dir}\n\n\
         # or from the environment\nAPP__SERVER__GRPC__TLS__DIR={dir}\n\n\
         Move {cak} out of {dir} (offline) before the apps use the folder: it signs certificates \
         both sides trust, and the apps warn while it is there.\n",
        cak = goex_certs::CA_KEY,
    ))
}
