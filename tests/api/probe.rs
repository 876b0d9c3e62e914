//! `go_example probe http|grpc|socket`: the binary asks a running app (the image's
//! HEALTHCHECK, Kubernetes' exec probes). Exit 0 when it serves, 1 with the reason otherwise;
//! TLS (and mutual TLS) as the gRPC app is configured, the certificate's name checked.

use std::process::Output;

use crate::grpc::spawn_grpc_with;
use crate::helpers::{app_command, free_port, redis_overrides, spawn_app, spawn_app_with};
use crate::socket::spawn_socket_process;

/// `go_example probe <args> --env test` with `env` only, off the runtime's threads.
async fn probe(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = app_command();
    command.arg("probe").args(args).args(["--env", "test"]);
    for (k, v) in env {
        command.env(k, v);
    }
    tokio::task::spawn_blocking(move || command.output().expect("go_example probe runs"))
        .await
        .unwrap()
}

fn text(output: &Output) -> (i32, String, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn port_of(address: &str) -> u16 {
    address.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_http_answers_0_when_the_app_serves_and_1_when_nothing_listens() {
    let app = spawn_app().await;
    // Configured on every interface (as in a container): asked on loopback.
    let addr = format!(":{}", port_of(&app.address));
    let (code, stdout, stderr) =
        text(&probe(&["http"], &[("APP__SERVER__HTTP__ADDR", addr)]).await);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("/healthz: 200"), "{stdout}");

    let closed = format!("127.0.0.1:{}", free_port());
    let (code, stdout, stderr) =
        text(&probe(&["http"], &[("APP__SERVER__HTTP__ADDR", closed.clone())]).await);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.starts_with("unhealthy: ") && stderr.contains(&closed),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_http_ready_fails_with_the_dependency_that_is_down_and_liveness_does_not() {
    // Redis configured on a port nothing listens on: /readyz answers 503 naming it.
    let dead = format!("127.0.0.1:{}", free_port());
    let app = spawn_app_with(&redis_overrides("single", &dead)).await;
    let addr = (
        "APP__SERVER__HTTP__ADDR",
        app.address.replace("http://", ""),
    );
    let (code, _, stderr) = text(&probe(&["http", "--ready"], std::slice::from_ref(&addr)).await);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("/readyz: 503") && stderr.contains("redis"),
        "{stderr}"
    );
    // The process still serves: liveness (and the readiness the manifests use) holds.
    let (code, _, stderr) = text(&probe(&["http"], &[addr]).await);
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_grpc_checks_health_over_tls_with_the_certificates_name() {
    let app = spawn_grpc_with("request", &[]).await;
    let env = [
        ("APP__SERVER__GRPC__ADDR", format!("0.0.0.0:{}", app.port)),
        (
            "APP__SERVER__GRPC__TLS__DIR",
            app.certs.display().to_string(),
        ),
        ("APP__SERVER__GRPC__TLS__CLIENT_AUTH", "request".to_owned()),
    ];
    let (code, stdout, stderr) = text(&probe(&["grpc"], &env).await);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("SERVING") && stdout.contains("https://"),
        "{stdout}"
    );

    // The certificate is checked: a name it does not carry is refused.
    let (code, _, stderr) =
        text(&probe(&["grpc", "--server-name", "elsewhere.invalid"], &env).await);
    assert_eq!(code, 1, "a certificate for another name was accepted");
    assert!(stderr.starts_with("unhealthy: "), "{stderr}");

    // Plaintext against the TLS port: no answer.
    let mut plain = env.to_vec();
    plain.push(("APP__SERVER__GRPC__TLS__ENABLED", "false".to_owned()));
    let (code, _, _) = text(&probe(&["grpc", "--timeout", "2s"], &plain).await);
    assert_eq!(code, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_grpc_presents_the_client_certificate_when_mutual_tls_is_required() {
    let app = spawn_grpc_with("require", &[]).await;
    let env = [
        ("APP__SERVER__GRPC__ADDR", format!("127.0.0.1:{}", app.port)),
        (
            "APP__SERVER__GRPC__TLS__DIR",
            app.certs.display().to_string(),
        ),
        ("APP__SERVER__GRPC__TLS__CLIENT_AUTH", "require".to_owned()),
    ];
    // The client certificate comes from grpc_client.tls.dir.
    let mut with_client = env.to_vec();
    with_client.push((
        "APP__GRPC_CLIENT__TLS__DIR",
        app.certs.display().to_string(),
    ));
    let (code, stdout, stderr) = text(&probe(&["grpc"], &with_client).await);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("SERVING"), "{stdout}");

    // Without it (a folder with no client certificate), the probe says so.
    let empty = tempfile::tempdir().unwrap();
    let mut without = env.to_vec();
    without.push((
        "APP__GRPC_CLIENT__TLS__DIR",
        empty.path().display().to_string(),
    ));
    let (code, _, stderr) = text(&probe(&["grpc"], &without).await);
    assert_eq!(code, 1);
    assert!(stderr.contains("client.pem"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_socket_asks_the_socket_apps_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port) = spawn_socket_process(dir.path(), &[]);
    let env = [("APP__SERVER__SOCKET__ADDR", format!(":{port}"))];
    let (code, stdout, stderr) = text(&probe(&["socket"], &env).await);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("/healthz: 200"), "{stdout}");
    let (code, _, _) = text(&probe(&["socket"], &env).await);
    assert_eq!(code, 1, "nothing listens any more");
}
