//! Configuration failures name the key and where it came from, and stop the process.

use std::process::Command;

use crate::helpers::{app_command, binary, manifest_dir};

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = app_command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run go_example");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_environment_key_names_itself_and_the_variable() {
    let (code, stderr) = run(
        &["http", "--env", "test"],
        &[("APP__SERVER__HTTP__ADRR", "x")],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("server.http.adrr"), "{stderr}");
    assert!(stderr.contains("APP__SERVER__HTTP__ADRR"), "{stderr}");
}

/// Runs the http app on a copy of `configs/` whose files `edit` changed; its stderr.
fn run_with_files(edit: impl FnOnce(&std::path::Path)) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let configs = manifest_dir().join("configs");
    std::fs::copy(configs.join("base.yaml"), dir.path().join("base.yaml")).unwrap();
    std::fs::create_dir_all(dir.path().join("test")).unwrap();
    std::fs::copy(
        configs.join("test/common.yaml"),
        dir.path().join("test/common.yaml"),
    )
    .unwrap();
    edit(dir.path());
    run(
        &[
            "http",
            "--env",
            "test",
            "--config-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
    )
}

#[test]
fn a_bad_key_in_a_file_names_itself_and_that_file() {
    // In the profile's overlay: the overlay is named.
    let (code, stderr) = run_with_files(|dir| {
        let overlay = dir.join("test/common.yaml");
        let original = std::fs::read_to_string(&overlay).unwrap();
        std::fs::write(
            &overlay,
            original.replacen("  http:\n", "  http:\n    max_conections: 5\n", 1),
        )
        .unwrap();
    });
    assert_ne!(code, 0);
    assert!(stderr.contains("server.http.max_conections"), "{stderr}");
    assert!(stderr.contains("test/common.yaml"), "{stderr}");

    // In the base: the base is named.
    let (code, stderr) = run_with_files(|dir| {
        let base = dir.join("base.yaml");
        let original = std::fs::read_to_string(&base).unwrap();
        std::fs::write(
            &base,
            original.replacen("  max_connections:", "  max_conections:", 1),
        )
        .unwrap();
    });
    assert_ne!(code, 0);
    assert!(stderr.contains("server.http.max_conections"), "{stderr}");
    assert!(stderr.contains("base.yaml"), "{stderr}");
}

#[test]
fn a_value_that_fails_a_check_names_the_overlay_that_set_it() {
    let (code, stderr) = run_with_files(|dir| {
        let overlay = dir.join("test/common.yaml");
        let original = std::fs::read_to_string(&overlay).unwrap();
        std::fs::write(
            &overlay,
            original.replacen("    addr: \":8080\"", "    addr: nowhere", 1),
        )
        .unwrap();
    });
    assert_ne!(code, 0);
    assert!(stderr.contains("server.http.addr"), "{stderr}");
    assert!(stderr.contains("test/common.yaml"), "{stderr}");
}

#[test]
fn a_mistyped_value_and_a_bad_address_are_named() {
    let (code, stderr) = run(
        &["http", "--env", "test"],
        &[("APP__SERVER__HTTP__WORKERS", "many")],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("server.http.workers"), "{stderr}");
    let (code, stderr) = run(
        &["http", "--env", "test"],
        &[("APP__SERVER__HTTP__ADDR", "nowhere")],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("server.http.addr"), "{stderr}");
}

#[test]
fn an_unknown_profile_is_refused() {
    let (code, stderr) = run(&["http", "--env", "staging"], &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("staging"), "{stderr}");
    let (code, stderr) = run(&["http"], &[("APP_ENV", "nope")]);
    assert_ne!(code, 0);
    assert!(stderr.contains("nope"), "{stderr}");
}

#[test]
fn prod_refuses_debug_routes() {
    let (code, stderr) = run(
        &["http", "--env", "prod"],
        &[("APP__SERVER__DEBUG_ROUTES", "true")],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("server.debug_routes"), "{stderr}");
}

#[test]
fn prod_refuses_swagger_ui() {
    let (code, stderr) = run(
        &["http", "--env", "prod"],
        &[("APP__SERVER__HTTP__SWAGGER_UI", "true")],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("server.http.swagger_ui"), "{stderr}");
}

#[test]
fn prod_refuses_grpc_without_a_password_or_with_dev_certificates() {
    let (code, stderr) = run(
        &["grpc", "--env", "prod"],
        &[
            ("APP__LOG__FILE__ENABLED", "false"),
            // Prod refuses a root DSN first.
            ("APP__MYSQL__DSN", "mysql://app:pw@127.0.0.1:1/go_example"),
        ],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("server.grpc.auth.password"), "{stderr}");
    // A non-empty password shorter than 16 characters is a guess away (issue 22).
    let (code, stderr) = run(
        &["grpc", "--env", "prod"],
        &[("APP__SERVER__GRPC__AUTH__PASSWORD", "s3cret-15-chars")],
    );
    assert_ne!(code, 0);
    assert!(
        stderr.contains("server.grpc.auth.password") && stderr.contains("at least 16"),
        "{stderr}"
    );
    let (code, stderr) = run(
        &["grpc", "--env", "prod"],
        &[
            ("APP__SERVER__GRPC__AUTH__PASSWORD", "s3cret-long-enough"),
            ("APP__SERVER__GRPC__TLS__GENERATE_MISSING", "true"),
        ],
    );
    assert_ne!(code, 0);
    assert!(
        stderr.contains("server.grpc.tls.generate_missing"),
        "{stderr}"
    );
}

#[test]
fn version_and_help_work() {
    let out = Command::new(binary()).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("go_example "));
    for args in [
        &["--help"][..],
        &["http", "--help"],
        &["grpc", "--help"],
        &["certs", "generate", "--help"],
        &["migrate", "--help"],
    ] {
        let out = Command::new(binary()).args(args).output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"));
    }
}

#[test]
fn keys_generate_writes_a_pair_and_prints_the_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().to_str().unwrap();
    let out = Command::new(binary())
        .args([
            "keys",
            "generate",
            "--name",
            "k2026",
            "--algorithm",
            "EdDSA",
            "--env",
            "test",
        ])
        .current_dir(manifest_dir())
        .env("APP__CERTS__DIR", certs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("curKey: k2026") && stdout.contains("keys: [test, k2026]"),
        "{stdout}"
    );
    assert!(dir.path().join("k2026/ed25519_private_key.pem").exists());
    // The key ring loads what was written, and the old key keeps verifying.
    let ring = goex_jwt::KeyRing::load(&goex_jwt::KeyRingSettings {
        dir: dir.path().to_path_buf(),
        current: "k2026".into(),
        keys: vec!["k2026".into()],
        algorithm: goex_jwt::Algorithm::EdDSA,
        issuer: "i".into(),
        audience: "a".into(),
        leeway: std::time::Duration::ZERO,
        max_token_bytes: 4096,
    });
    assert!(ring.is_ok());
    let (code, stderr) = run(
        &["keys", "generate", "--name", "../escape"],
        &[("APP__CERTS__DIR", certs)],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("letters, digits"), "{stderr}");
}

#[test]
fn prod_refuses_to_start_without_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(
        &["http", "--env", "prod"],
        &[
            ("APP__CERTS__DIR", dir.path().to_str().unwrap()),
            ("APP__SERVER__HTTP__ADDR", "127.0.0.1:0"),
            ("APP__LOG__FILE__ENABLED", "false"),
            // Prod refuses a root DSN before it looks for keys.
            ("APP__MYSQL__DSN", "mysql://app:pw@127.0.0.1:1/go_example"),
        ],
    );
    assert_ne!(code, 0);
    assert!(
        stderr.contains("certs") && stderr.contains("prod1"),
        "{stderr}"
    );
    let (code, stderr) = run(
        &["http", "--env", "prod"],
        &[("APP__CERTS__GENERATE_MISSING", "true")],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("certs.generate_missing"), "{stderr}");
}

#[test]
fn a_login_cache_ttl_over_one_second_is_refused() {
    let (code, stderr) = run(
        &["http", "--env", "test"],
        &[("APP__AUTH__LOGIN_CACHE_TTL", "2s")],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("auth.login_cache_ttl"), "{stderr}");
}
