//! Signing, rotation and the attacks a verifier must refuse.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Claims {
    sub: String,
    iss: String,
    aud: String,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Claims {
    Claims {
        sub: "42".into(),
        iss: "go_example".into(),
        aud: "go_example-api".into(),
        exp: now() + 600,
        nbf: None,
    }
}

fn settings(dir: &Path, current: &str, keys: &[&str], algorithm: Algorithm) -> KeyRingSettings {
    KeyRingSettings {
        dir: dir.to_path_buf(),
        current: current.into(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        algorithm,
        issuer: "go_example".into(),
        audience: "go_example-api".into(),
        leeway: Duration::from_secs(5),
        max_token_bytes: 4096,
    }
}

fn ring(dir: &Path, current: &str, keys: &[&str]) -> KeyRing {
    KeyRing::load(&settings(dir, current, keys, Algorithm::EdDSA)).unwrap()
}

fn invalid(r: Result<Claims, JwtError>) {
    assert!(matches!(r, Err(JwtError::Invalid(_))), "{r:?}");
}

/// A token with an arbitrary header and payload, signed with `signature` (not checked here).
fn forge(header: serde_json::Value, payload: &Claims, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        B64.encode(header.to_string()),
        B64.encode(serde_json::to_string(payload).unwrap())
    )
}

#[test]
fn every_selectable_algorithm_signs_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    for (name, algorithm) in [
        ("rs512", Algorithm::RS512),
        ("rs256", Algorithm::RS256),
        ("ed", Algorithm::EdDSA),
    ] {
        generate(dir.path(), name, algorithm).unwrap();
        let ring = KeyRing::load(&settings(dir.path(), name, &[name], algorithm)).unwrap();
        // One set of claims: `claims()` reads the clock, and a second may pass in between.
        let signed = claims();
        let token = ring.sign(&signed).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(
            (header.alg, header.kid.as_deref()),
            (algorithm.jwt(), Some(name))
        );
        assert_eq!(
            ring.verify::<Claims>(&token).unwrap(),
            signed,
            "{algorithm:?}"
        );
    }
}

#[test]
fn rotation_keeps_old_tokens_valid_until_the_old_key_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "k1", Algorithm::EdDSA).unwrap();
    let old = ring(dir.path(), "k1", &["k1"]).sign(&claims()).unwrap();
    generate(dir.path(), "k2", Algorithm::EdDSA).unwrap();
    let rotated = ring(dir.path(), "k2", &["k1", "k2"]);
    assert_eq!(
        rotated.verify::<Claims>(&old).unwrap().sub,
        "42",
        "nobody is logged out"
    );
    let new = rotated.sign(&claims()).unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&new).unwrap().kid.as_deref(),
        Some("k2")
    );
    let retired = ring(dir.path(), "k2", &["k2"]);
    invalid(retired.verify(&old));
    assert!(retired.verify::<Claims>(&new).is_ok());
}

#[test]
fn forged_algorithms_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "rsa", Algorithm::RS512).unwrap();
    let ring = KeyRing::load(&settings(dir.path(), "rsa", &["rsa"], Algorithm::RS512)).unwrap();
    // alg: none
    invalid(ring.verify(&forge(
        serde_json::json!({"alg": "none", "kid": "rsa", "typ": "JWT"}),
        &claims(),
        "",
    )));
    // HS256 keyed with the public key, the classic confusion attack.
    let public = std::fs::read(dir.path().join("rsa/rsa_public_key.pem")).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("rsa".into());
    let hs = jsonwebtoken::encode(
        &header,
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    invalid(ring.verify(&hs));
    // Another RSA algorithm than the key's pinned one.
    invalid(ring.verify(&forge(
        serde_json::json!({"alg": "RS256", "kid": "rsa"}),
        &claims(),
        "AAAA",
    )));
}

#[test]
fn unknown_missing_and_path_like_kids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "k1", Algorithm::EdDSA).unwrap();
    let ring = ring(dir.path(), "k1", &["k1"]);
    let token = ring.sign(&claims()).unwrap();
    let (_, rest) = token.split_once('.').unwrap();
    for header in [
        serde_json::json!({"alg": "EdDSA", "kid": "k9"}),
        serde_json::json!({"alg": "EdDSA", "kid": "../k1"}),
        serde_json::json!({"alg": "EdDSA", "kid": "/etc/passwd"}),
        serde_json::json!({"alg": "EdDSA"}),
    ] {
        invalid(ring.verify(&format!("{}.{rest}", B64.encode(header.to_string()))));
    }
}

#[test]
fn tampering_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "k1", Algorithm::EdDSA).unwrap();
    let ring = ring(dir.path(), "k1", &["k1"]);
    let token = ring.sign(&claims()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut admin = claims();
    admin.sub = "1".into();
    let payload = B64.encode(serde_json::to_string(&admin).unwrap());
    invalid(ring.verify(&format!("{}.{payload}.{}", parts[0], parts[2])));
    let mut signature = B64.decode(parts[2]).unwrap();
    signature[0] ^= 1;
    invalid(ring.verify(&format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        B64.encode(signature)
    )));
    invalid(ring.verify("not.a.token"));
    invalid(ring.verify(""));
    invalid(ring.verify(&"a".repeat(10_000)));
}

#[test]
fn time_issuer_and_audience_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "k1", Algorithm::EdDSA).unwrap();
    let ring = ring(dir.path(), "k1", &["k1"]);
    let mut expired = claims();
    expired.exp = now() - 60;
    assert!(matches!(
        ring.verify::<Claims>(&ring.sign(&expired).unwrap()),
        Err(JwtError::Expired)
    ));
    let mut within_leeway = claims();
    within_leeway.exp = now() - 2;
    assert!(
        ring.verify::<Claims>(&ring.sign(&within_leeway).unwrap())
            .is_ok()
    );
    let mut early = claims();
    early.nbf = Some(now() + 300);
    invalid(ring.verify(&ring.sign(&early).unwrap()));
    let mut issuer = claims();
    issuer.iss = "someone-else".into();
    invalid(ring.verify(&ring.sign(&issuer).unwrap()));
    let mut audience = claims();
    audience.aud = "another-api".into();
    invalid(ring.verify(&ring.sign(&audience).unwrap()));
}

#[test]
fn bad_key_rings_fail_to_load() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "k1", Algorithm::EdDSA).unwrap();
    let load = |current: &str, keys: &[&str]| {
        KeyRing::load(&settings(dir.path(), current, keys, Algorithm::EdDSA))
    };
    assert!(
        matches!(load("k2", &["k1"]), Err(JwtError::Settings(_))),
        "current not listed"
    );
    assert!(
        matches!(load("k1", &["k1", "../k1"]), Err(JwtError::Settings(_))),
        "path-like name"
    );
    assert!(
        matches!(load("k1", &["k1", "missing"]), Err(JwtError::Key { .. })),
        "missing files"
    );
    assert!(
        matches!(
            generate(dir.path(), "k1", Algorithm::EdDSA),
            Err(JwtError::Key { .. })
        ),
        "no overwrite"
    );
    // A verify-only old key: its private half may be gone.
    generate(dir.path(), "old", Algorithm::EdDSA).unwrap();
    std::fs::remove_file(dir.path().join("old/ed25519_private_key.pem")).unwrap();
    assert!(load("k1", &["k1", "old"]).is_ok());
    assert!(
        matches!(load("old", &["old"]), Err(JwtError::Key { .. })),
        "the signing key needs its private half"
    );
}

#[cfg(unix)]
#[test]
fn private_keys_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "k1", Algorithm::EdDSA).unwrap();
    let mode = std::fs::metadata(dir.path().join("k1/ed25519_private_key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[cfg(unix)]
#[test]
fn private_keys_readable_by_others_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    for algorithm in [Algorithm::EdDSA, Algorithm::RS256] {
        let name = format!("{algorithm:?}").to_lowercase();
        generate(dir.path(), &name, algorithm).unwrap();
        let private = dir
            .path()
            .join(&name)
            .join(format!("{}_private_key.pem", algorithm.file_prefix()));
        let public = dir
            .path()
            .join(&name)
            .join(format!("{}_public_key.pem", algorithm.file_prefix()));
        let chmod = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let load = || KeyRing::load(&settings(dir.path(), &name, &[&name], algorithm));
        // Group-read alone is judged by owner and group (goex_secrets' own tests).
        for mode in [0o644, 0o604, 0o660, 0o602] {
            chmod(&private, mode);
            match load() {
                Err(e @ JwtError::InsecureKey { .. }) => {
                    let message = e.to_string();
                    assert!(
                        message.contains(&private.display().to_string())
                            && message.contains("chmod 600"),
                        "{message}"
                    );
                }
                other => panic!("mode {mode:o} accepted: {:?}", other.err()),
            }
        }
        for mode in [0o600, 0o400] {
            chmod(&private, mode);
            assert!(load().is_ok(), "mode {mode:o}");
        }
        // A Kubernetes secret with fsGroup: root-owned, 0440, a group of the process's.
        chmod(&private, 0o440);
        assert_eq!(
            load().is_ok(),
            running_as_root(),
            "0440 is the rule's second case"
        );
        // Public keys may be world-readable.
        chmod(&public, 0o644);
        assert!(load().is_ok());
    }
    // A verify-only key's private half is judged too when present: it could sign.
    generate(dir.path(), "cur", Algorithm::EdDSA).unwrap();
    let old = dir.path().join("eddsa/ed25519_private_key.pem");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        KeyRing::load(&settings(
            dir.path(),
            "cur",
            &["cur", "eddsa"],
            Algorithm::EdDSA
        )),
        Err(JwtError::InsecureKey { .. })
    ));
}

#[test]
fn missing_dev_keys_are_generated_once_even_by_racing_processes() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), "dev", &["dev"], Algorithm::EdDSA);
    assert!(load_or_generate(&s, false).is_err(), "prod: no generation");
    let rings: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                load_or_generate(&s, true).map(|r| r.sign(&claims()).unwrap())
            })
        })
        .collect();
    let tokens: Vec<String> = rings
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    let ring = KeyRing::load(&s).unwrap();
    for t in &tokens {
        assert!(
            ring.verify::<Claims>(t).is_ok(),
            "every racer ended with the same key"
        );
    }
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1, "no staging folders left behind");
}

#[cfg(unix)]
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
