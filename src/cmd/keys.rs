//! `go_example keys generate`: writes a new signing key pair and prints the configuration that
//! rotates to it (the original generated them with openssl by hand).

use anyhow::Context;
use goex_jwt::Algorithm;

use crate::meta::config::AppConfig;

/// Generates key `name` under `certs.dir` and prints the `certs` lines that make it current
/// while the existing keys keep verifying.
///
/// # Errors
/// The name is not a plain name, the key exists (unless `existing` keeps it), or the files
/// cannot be written.
pub fn generate(
    config: &AppConfig,
    name: &str,
    algorithm: Option<Algorithm>,
    existing: super::certs::Existing,
) -> anyhow::Result<String> {
    let algorithm = algorithm.unwrap_or(config.certs.algorithm);
    let dir = std::path::Path::new(&config.certs.dir);
    if existing == super::certs::Existing::Keep && dir.join(name).is_dir() {
        return Ok(format!(
            "kept key {name} in {} (--if-missing)\n",
            dir.display()
        ));
    }
    let folder = goex_jwt::generate(dir, name, algorithm)
        .with_context(|| format!("generating key {name}"))?;
    let mut keys = config.certs.keys.clone();
    if !keys.iter().any(|k| k == name) {
        keys.push(name.to_owned());
    }
    Ok(format!(
        "wrote {algorithm:?} key pair to {}\n\n# configs/<env>/common.yaml: sign with the new key, keep verifying the old ones\ncerts:\n  curKey: {name}\n  keys: [{}]\n\n# or from the environment\nAPP__CERTS__CURKEY={name}\n",
        folder.display(),
        keys.join(", ")
    ))
}
