//! TLS certificates for the gRPC app, made with rcgen instead of the original's openssl steps:
//! a CA, a server certificate and a client certificate signed by it, written as the files the
//! original used (`ca.crt`, `server.pem` / `server.key`, `client.pem` / `client.key`; the CA's
//! key as `ca.key`). Keys are ECDSA P-256; private keys are written `0600` and certificates
//! `0644`, whether the file is new or not.
//!
//! [`generate`] writes a new set, the CA's key included (the operator's CA, to be kept offline);
//! [`ensure`] writes one only where none is (the debug and test profiles make their dev
//! certificates so on first run) and discards the dev CA's key once it has signed: a runtime
//! TLS folder never holds a key that can issue certificates both sides trust.
//! [`check_modes`] refuses a private key its group or others may read and a certificate they
//! may write, at every start.

#![warn(missing_docs)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// The CA certificate, the trust anchor of both sides.
pub const CA_CERT: &str = "ca.crt";
/// The CA's private key (needed only to sign more certificates; never in a runtime folder).
pub const CA_KEY: &str = "ca.key";
/// The server's certificate chain.
pub const SERVER_CERT: &str = "server.pem";
/// The server's private key.
pub const SERVER_KEY: &str = "server.key";
/// The client's certificate (mTLS).
pub const CLIENT_CERT: &str = "client.pem";
/// The client's private key.
pub const CLIENT_KEY: &str = "client.key";

/// The names the original's certificates covered (`*.example.com`, checked as
/// `www.example.com`) and the loopback addresses a local client dials.
pub const DEFAULT_SANS: &[&str] = &[
    "www.example.com",
    "*.example.com",
    "localhost",
    "127.0.0.1",
    "::1",
];

/// Days the development certificates of [`ensure`]'s callers are valid.
pub const DEV_DAYS: u32 = 365;

/// Why certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A subject alternative name is not a DNS name or an IP address.
    #[error("subject alternative name `{name}`: {source}")]
    San {
        /// The offending name.
        name: String,
        /// rcgen's reason.
        #[source]
        source: rcgen::Error,
    },
    /// A subject alternative name is neither an IP address nor a DNS name (labels of letters,
    /// digits and `-`, an optional leading `*.`).
    #[error("`{0}` is neither a DNS name nor an IP address")]
    NotAName(String),
    /// rcgen could not make a key or a certificate.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// [`generate`] refuses to overwrite an existing set.
    #[error("{0} exists: remove it or choose another folder")]
    Exists(PathBuf),
    /// A private key file may be read by its group or by others: refused, since whoever reads
    /// it can impersonate the server or the client (the JWT key loader's rule).
    #[error(
        "private key {} is readable by group or others (mode {mode:03o}); {}",
        .path.display(),
        goex_secrets::HINT
    )]
    InsecureKey {
        /// The private key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A certificate may be written by its group or by others: refused, not corrected, since
    /// it may have been replaced already (a swapped `ca.crt` trusts another CA).
    #[error(
        "certificate {} is writable by group or others (mode {mode:03o}); restrict it with `chmod 644 {}`",
        .path.display(),
        .path.display()
    )]
    WritableCertificate {
        /// The certificate file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file's mode could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What [`generate`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The folder.
    pub dir: PathBuf,
    /// The server certificate's subject alternative names.
    pub sans: Vec<String>,
    /// Days the certificates are valid for.
    pub days: u32,
}

/// Writes a CA (its key `ca.key` included), a server and a client certificate under `dir`
/// (created if missing), the server certificate covering `sans` (DNS names, `*.` wildcards, IP
/// addresses), all valid for `days`. `go_example certs generate`: the operator moves `ca.key`
/// out of the folder the apps read.
///
/// # Errors
/// A bad name, an existing `ca.crt` in `dir`, or a file that cannot be written.
pub fn generate(dir: &Path, sans: &[String], days: u32) -> Result<Written, CertError> {
    write_set(dir, sans, days, true)
}

/// [`generate`] without keeping the CA's key: it signs the two certificates and is dropped, so
/// `dir` can be the runtime folder (a deployment's init step); the next set needs a new CA.
///
/// # Errors
/// As [`generate`].
pub fn generate_without_ca_key(
    dir: &Path,
    sans: &[String],
    days: u32,
) -> Result<Written, CertError> {
    write_set(dir, sans, days, false)
}

fn write_set(
    dir: &Path,
    sans: &[String],
    days: u32,
    keep_ca_key: bool,
) -> Result<Written, CertError> {
    let ca_path = dir.join(CA_CERT);
    if ca_path.exists() {
        return Err(CertError::Exists(ca_path));
    }
    fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let (not_before, not_after) = validity(days);

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "go_example development CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "go_example-rs");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate()?;
    let mut server = leaf(sans, "go_example gRPC server", not_before, not_after)?;
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let client_key = KeyPair::generate()?;
    let mut client = leaf(&[], "go_example gRPC client", not_before, not_after)?;
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer)?;

    write(&dir.join(SERVER_CERT), &server_cert.pem(), false)?;
    write(&dir.join(SERVER_KEY), &server_key.serialize_pem(), true)?;
    write(&dir.join(CLIENT_CERT), &client_cert.pem(), false)?;
    write(&dir.join(CLIENT_KEY), &client_key.serialize_pem(), true)?;
    if keep_ca_key {
        write(&dir.join(CA_KEY), &issuer.key().serialize_pem(), true)?;
    }
    // Last: its presence means the set is complete.
    write(&ca_path, &ca_cert.pem(), false)?;
    Ok(Written {
        dir: dir.to_owned(),
        sans: sans.to_vec(),
        days,
    })
}

/// Writes a set with [`DEFAULT_SANS`] unless `dir` holds one already (its `ca.crt`); returns
/// what it wrote, `None` when nothing was needed. The dev CA's key is discarded once it has
/// signed the two certificates (nobody needs it: a new set is one `rm -r` away), so `dir`,
/// the runtime folder, holds no `ca.key`.
///
/// # Errors
/// As [`generate`].
pub fn ensure(dir: &Path, days: u32) -> Result<Option<Written>, CertError> {
    if dir.join(CA_CERT).exists() {
        return Ok(None);
    }
    let sans: Vec<String> = DEFAULT_SANS.iter().map(|s| (*s).to_owned()).collect();
    write_set(dir, &sans, days, false).map(Some)
}

/// Checks the modes of `files` in `dir` (those present; a missing one is reported by whoever
/// reads it): a private key (`*.key`) its group or others may read is refused
/// ([`CertError::InsecureKey`]; [`goex_secrets::check_private`]'s rule, which admits a
/// root-owned, group-read key of the process's group), a certificate they may write too
/// ([`CertError::WritableCertificate`]). The mode is the target's, so a symlink (a Kubernetes
/// secret mount) is judged by what it points to. Returns `ca.key` when it sits in `dir`, for a
/// warning: a runtime folder should not hold the CA's key.
///
/// # Errors
/// The first file whose mode is refused, or one whose mode cannot be read.
pub fn check_modes(dir: &Path, files: &[&str]) -> Result<Option<PathBuf>, CertError> {
    #[cfg(unix)]
    for name in files {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(CertError::Read { path, source }),
        };
        let mode = meta.permissions().mode() & 0o777;
        if name.ends_with(".key") {
            if let Err(refused) = goex_secrets::check_private(&meta) {
                return Err(CertError::InsecureKey {
                    path,
                    mode: refused.mode,
                });
            }
        } else if mode & 0o022 != 0 {
            return Err(CertError::WritableCertificate { path, mode });
        }
    }
    #[cfg(not(unix))]
    let _ = files;
    let ca_key = dir.join(CA_KEY);
    Ok(ca_key.exists().then_some(ca_key))
}

fn leaf(
    sans: &[String],
    common_name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    for name in sans {
        if name.parse::<std::net::IpAddr>().is_err() && !is_dns_name(name) {
            return Err(CertError::NotAName(name.clone()));
        }
        let one = CertificateParams::new(vec![name.clone()]).map_err(|source| CertError::San {
            name: name.clone(),
            source,
        })?;
        params.subject_alt_names.extend(one.subject_alt_names);
    }
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = not_before;
    params.not_after = not_after;
    Ok(params)
}

fn is_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn validity(days: u32) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    // A day of slack for clocks that disagree a little.
    (
        now - Duration::days(1),
        now + Duration::days(i64::from(days)),
    )
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), CertError> {
    let err = |source| CertError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    let mode = if private { 0o600 } else { 0o644 };
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(err)?;
    // The mode of `open` applies to a new file only (and through the umask): set it on the
    // open file, before anything secret is written to it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(err)?;
    }
    file.write_all(contents.as_bytes()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_originals_files_with_private_keys_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("grpc");
        let sans = vec!["www.example.com".to_owned(), "127.0.0.1".to_owned()];
        let written = generate(&out, &sans, 30).unwrap();
        assert_eq!(written.sans, sans);
        for name in [
            CA_CERT,
            CA_KEY,
            SERVER_CERT,
            SERVER_KEY,
            CLIENT_CERT,
            CLIENT_KEY,
        ] {
            let text = fs::read_to_string(out.join(name)).unwrap();
            assert!(text.starts_with("-----BEGIN "), "{name}");
        }
        #[cfg(unix)]
        for name in [CA_KEY, SERVER_KEY, CLIENT_KEY] {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(out.join(name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{name} is private");
        }
        assert!(matches!(
            generate(&out, &sans, 30),
            Err(CertError::Exists(_))
        ));
        assert_eq!(ensure(&out, 30).unwrap(), None, "a complete set is kept");
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    #[cfg(unix)]
    fn the_dev_set_discards_its_ca_key_and_modes_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("grpc");
        ensure(&out, 1).unwrap().expect("written");
        assert!(out.join(CA_CERT).exists());
        assert!(
            !out.join(CA_KEY).exists(),
            "the runtime folder holds no CA key"
        );
        for name in [SERVER_KEY, CLIENT_KEY] {
            assert_eq!(mode(&out.join(name)), 0o600, "{name}");
        }
        for name in [CA_CERT, SERVER_CERT, CLIENT_CERT] {
            assert_eq!(mode(&out.join(name)), 0o644, "{name}");
        }
        let all = [CA_CERT, SERVER_CERT, SERVER_KEY, CLIENT_CERT, CLIENT_KEY];
        assert_eq!(check_modes(&out, &all).unwrap(), None);

        // An existing file written again gets the mode, not just a new one.
        let stale = dir.path().join("stale");
        fs::create_dir_all(&stale).unwrap();
        fs::write(stale.join(SERVER_KEY), "old").unwrap();
        chmod(&stale.join(SERVER_KEY), 0o644);
        generate(&stale, &["localhost".into()], 1).unwrap();
        assert_eq!(mode(&stale.join(SERVER_KEY)), 0o600);
        assert_eq!(
            mode(&stale.join(CA_KEY)),
            0o600,
            "certs generate keeps the operator's CA key"
        );
        assert_eq!(check_modes(&stale, &all).unwrap(), Some(stale.join(CA_KEY)));
    }

    #[test]
    #[cfg(unix)]
    fn a_key_others_may_read_or_a_certificate_they_may_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), 1).unwrap();
        let all = [CA_CERT, SERVER_CERT, SERVER_KEY];
        // Group-read alone is judged by owner and group (goex_secrets' own tests).
        for wide in [0o644, 0o604, 0o660] {
            chmod(&dir.path().join(SERVER_KEY), wide);
            let e = check_modes(dir.path(), &all).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, CertError::InsecureKey { .. }), "{text}");
            assert!(
                text.contains(&dir.path().join(SERVER_KEY).display().to_string())
                    && text.contains("chmod 600"),
                "{text}"
            );
        }
        chmod(&dir.path().join(SERVER_KEY), 0o400);
        check_modes(dir.path(), &all).unwrap();
        // A Kubernetes secret with fsGroup: root-owned, 0440, a group of the process's.
        chmod(&dir.path().join(SERVER_KEY), 0o440);
        {
            use std::os::unix::fs::MetadataExt;
            let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
            assert_eq!(check_modes(dir.path(), &all).is_ok(), root, "0440 as root");
        }
        chmod(&dir.path().join(SERVER_KEY), 0o400);
        for wide in [0o664, 0o646] {
            chmod(&dir.path().join(CA_CERT), wide);
            let e = check_modes(dir.path(), &all).unwrap_err();
            assert!(matches!(e, CertError::WritableCertificate { .. }), "{e}");
        }
        chmod(&dir.path().join(CA_CERT), 0o444);
        check_modes(dir.path(), &all).unwrap();
        // Missing files are left to whoever reads them.
        check_modes(dir.path(), &["missing.key", "missing.pem"]).unwrap();
    }

    #[test]
    fn a_bad_name_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = generate(dir.path(), &["not a name".to_owned()], 1).unwrap_err();
        assert!(err.to_string().contains("not a name"), "{err}");
        assert!(!dir.path().join(CA_CERT).exists());
    }
}
