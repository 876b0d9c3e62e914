//! Safe defaults the process enforces at start: prod's MySQL account, private key permissions,
//! a warning for a Redis without a password.

use crate::helpers::app_command;

/// Runs `go_example http --env prod` with `env` (never binding a public port or writing
/// `logs/`); returns the exit code, stdout and stderr.
fn run_prod(env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = app_command();
    cmd.args(["http", "--env", "prod"])
        .env("APP__SERVER__HTTP__ADDR", "127.0.0.1:0")
        .env("APP__LOG__FILE__ENABLED", "false")
        .env("APP__MONGODB__ENABLED", "false");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run go_example");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn prod_refuses_a_root_mysql_account_without_printing_the_dsn() {
    for dsn in [
        "mysql://root:hunter2@127.0.0.1:1/go_example",
        "root:hunter2@tcp(127.0.0.1:1)/go_example",
    ] {
        let (code, stdout, stderr) = run_prod(&[("APP__MYSQL__DSN", dsn)]);
        assert_ne!(code, 0);
        assert!(
            stderr.contains("mysql.dsn") && stderr.contains("root"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("hunter2") && !stdout.contains("hunter2"),
            "{stdout}{stderr}"
        );
    }
    let (code, _, stderr) = run_prod(&[
        ("APP__MYSQL__DSN", "mysql://app:pw@127.0.0.1:1/go_example"),
        (
            "APP__MYSQL__REPLICAS__0__DSN",
            "mysql://reader@127.0.0.1:1/go_example",
        ),
    ]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("mysql.replicas[0].dsn") && stderr.contains("empty password"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn a_private_key_readable_by_others_stops_the_start_and_redis_without_auth_is_warned() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let folder = goex_jwt::generate(dir.path(), "prod1", goex_jwt::Algorithm::RS512).unwrap();
    let private = folder.join("rsa_private_key.pem");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, stdout, stderr) = run_prod(&[
        ("APP__MYSQL__DSN", "mysql://app:pw@127.0.0.1:1/go_example"),
        ("APP__CERTS__DIR", dir.path().to_str().unwrap()),
        ("APP__REDIS__ENABLED", "true"),
        ("APP__REDIS__PASSWORD", ""),
    ]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&private.display().to_string()) && stderr.contains("chmod 600"),
        "{stderr}"
    );
    // Logged before the keys are read; prod logs JSON lines to stdout.
    let warning = stdout
        .lines()
        .find(|l| l.contains("redis.password is empty"))
        .unwrap_or_else(|| panic!("no warning in {stdout}"));
    let record: serde_json::Value = serde_json::from_str(warning).unwrap();
    assert_eq!(record["level"], "WARN");
}
