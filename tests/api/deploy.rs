//! Deployment (docs/deploy.md): the Dockerfile's invariants, and the image `make test` does
//! build: `FROM scratch` with buildah from the debug binary and deploy/image/rootfs.sh (the
//! Dockerfile's runtime tree), in which the app runs as its non-root user, reads a Kubernetes-
//! style secret (root-owned, 0440, the app's group) and answers `/healthz` and its own probe.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{binary, eventually, free_port, manifest_dir, scrape_port};

/// The app user of the image (deploy/Dockerfile's `USER`).
const APP_UID: u32 = 65532;

fn read(path: &str) -> String {
    std::fs::read_to_string(manifest_dir().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped, split in stages.
fn dockerfile_stages() -> Vec<Vec<String>> {
    let text = read("deploy/Dockerfile").replace("\\\n", " ");
    let mut stages: Vec<Vec<String>> = vec![Vec::new()];
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("FROM ") {
            stages.push(Vec::new());
        }
        stages.last_mut().unwrap().push(line.to_owned());
    }
    stages
}

fn instructions<'a>(stage: &'a [String], keyword: &'a str) -> impl Iterator<Item = &'a str> {
    stage
        .iter()
        .filter_map(move |l| l.strip_prefix(keyword)?.strip_prefix(' '))
}

#[test]
fn the_dockerfile_builds_locked_with_the_pinned_toolchain_and_runs_non_root_from_scratch() {
    let stages = dockerfile_stages();
    let (args, build, runtime) = (&stages[0], &stages[1], stages.last().unwrap());
    assert_eq!(stages.len(), 3, "ARGs, the build stage, the runtime stage");

    // The toolchain of rust-toolchain.toml, the build `--locked`.
    let channel = read("rust-toolchain.toml")
        .lines()
        .find_map(|l| {
            l.strip_prefix("channel = ")?
                .trim_matches('"')
                .to_owned()
                .into()
        })
        .unwrap();
    assert!(
        args.contains(&format!("ARG RUST_VERSION={channel}")),
        "{args:?}"
    );
    assert!(build[0].contains("rust:${RUST_VERSION}"), "{}", build[0]);
    assert!(
        instructions(build, "RUN")
            .any(|r| r.contains("cargo build --release --locked --bin go_example")),
        "the build is --locked"
    );

    // The runtime: an empty base, a numeric non-root user.
    assert_eq!(runtime[0], "FROM scratch");
    let user: Vec<&str> = instructions(runtime, "USER").collect();
    assert_eq!(user, [format!("{APP_UID}:{APP_UID}").as_str()]);

    // Exec form HEALTHCHECK running the binary's own probe (no shell in the image).
    let check = instructions(runtime, "HEALTHCHECK")
        .next()
        .expect("HEALTHCHECK");
    let exec = check.split_once("CMD ").expect("HEALTHCHECK ... CMD").1;
    let argv: Vec<String> = serde_json::from_str(exec).expect("exec form: a JSON array");
    assert_eq!(argv[..2], ["/app/go_example", "probe"]);
    assert!(["http", "grpc", "socket"].contains(&argv[2].as_str()));
    let entry: Vec<String> =
        serde_json::from_str(instructions(runtime, "ENTRYPOINT").next().unwrap()).unwrap();
    assert_eq!(entry, ["/app/go_example"]);

    // The three apps' ports.
    let exposed: Vec<&str> = instructions(runtime, "EXPOSE")
        .flat_map(str::split_whitespace)
        .collect();
    for port in ["8080", "9090", "30000"] {
        assert!(exposed.contains(&port), "EXPOSE {port}: {exposed:?}");
    }
}

#[test]
fn nothing_of_var_logs_or_any_key_reaches_the_image() {
    let stages = dockerfile_stages();
    // What the build stage copies from the context: sources only.
    for stage in &stages {
        for copy in instructions(stage, "COPY") {
            let words: Vec<&str> = copy
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            let sources = &words[..words.len() - 1];
            for source in sources {
                let source = source.trim_start_matches("./");
                assert!(
                    !["var", "logs", "target", "assets/certs"]
                        .iter()
                        .any(|bad| source.starts_with(bad))
                        && !source.ends_with(".key")
                        && !source.ends_with(".pem")
                        && source != ".",
                    "COPY {copy}"
                );
            }
        }
    }
    // And what the context may hold at all.
    let ignore = read("deploy/Dockerfile.dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    for must in [
        "var/",
        "logs/",
        "target/",
        "**/*.key",
        "**/*.pem",
        "**/*.crt",
        "assets/certs/",
    ] {
        assert!(ignored.contains(&must), "{must} not in the dockerignore");
    }
}

/// buildah on the test's own storage, chroot isolation (no runtime, no daemon).
struct Buildah {
    storage: tempfile::TempDir,
}

impl Buildah {
    fn command(&self) -> Command {
        let mut command = Command::new("buildah");
        command
            .arg("--storage-driver")
            .arg("vfs")
            .arg("--root")
            .arg(self.storage.path().join("root"))
            .arg("--runroot")
            .arg(self.storage.path().join("run"));
        command
    }

    fn output(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().expect("buildah runs");
        assert!(
            out.status.success(),
            "buildah {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `buildah run` of `argv` in `container` as the image's user, with `env` and `mounts`.
    fn run(&self, container: &str, env: &[(&str, String)], mounts: &[String]) -> Command {
        let mut command = self.command();
        command.args(["run", "--isolation", "chroot"]);
        for (k, v) in env {
            command.arg("--env").arg(format!("{k}={v}"));
        }
        for mount in mounts {
            command.arg("--volume").arg(mount);
        }
        command.arg(container).arg("--");
        command
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        let _ = self.command().args(["rm", "--all"]).output();
        let _ = self.command().args(["rmi", "--all", "--force"]).output();
    }
}

/// A JWT key set like a Kubernetes Secret mounted with `fsGroup: 65532`: root-owned, files
/// 0440, folders 0750, the group the app's.
fn secret_keys(dir: &Path) -> PathBuf {
    use std::os::unix::fs::{PermissionsExt, chown};
    let keys = dir.join("secrets");
    goex_jwt::generate(&keys.join("jwt"), "k1", goex_jwt::Algorithm::RS512).unwrap();
    for entry in walk(&keys) {
        chown(&entry, Some(0), Some(APP_UID)).unwrap();
        let mode = if entry.is_dir() { 0o750 } else { 0o440 };
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    keys
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            out.extend(walk(&entry.unwrap().path()));
        }
    }
    out
}

/// Kills a `buildah run` and the app it started (its process group).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scratch_image_runs_the_app_as_its_user_reading_a_0440_secret() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    let buildah = Buildah {
        storage: tempfile::tempdir().unwrap(),
    };
    let made = Command::new(manifest_dir().join("scripts/scratch-image.sh"))
        .arg(binary())
        .arg("localhost/go_example:test")
        .arg(buildah.storage.path())
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/scratch-image.sh runs");
    assert!(made.status.success(), "the image is built");

    // The image's config is the Dockerfile's runtime stage.
    let config: serde_json::Value = serde_json::from_str(&buildah.output(&[
        "inspect",
        "--type",
        "image",
        "localhost/go_example:test",
    ]))
    .unwrap();
    let docker = &config["Docker"]["config"];
    assert_eq!(docker["User"], format!("{APP_UID}:{APP_UID}"));
    assert_eq!(docker["WorkingDir"], "/app");
    assert_eq!(docker["Entrypoint"], serde_json::json!(["/app/go_example"]));
    assert_eq!(
        docker["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/app/go_example", "probe", "http"])
    );
    let runtime = dockerfile_stages().pop().unwrap();
    let env = instructions(&runtime, "ENV").next().unwrap();
    for (k, v) in env.split_whitespace().filter_map(|kv| kv.split_once('=')) {
        let set = format!("{k}={v}");
        assert!(
            docker["Env"].as_array().unwrap().iter().any(|e| *e == set),
            "{set} in {}",
            docker["Env"]
        );
    }

    let container = buildah.output(&["from", "--pull-never", "localhost/go_example:test"]);
    let root = PathBuf::from(buildah.output(&["mount", &container]));
    // Only the runtime tree: no shell, no key or certificate, var/ and logs/ empty and the
    // user's, the binary and configs root's.
    assert!(!root.join("bin/sh").exists() && !root.join("usr/bin").exists());
    let files = walk(&root);
    assert!(
        !files.iter().any(|f| {
            let name = f.to_string_lossy();
            (name.ends_with(".key") || name.ends_with(".pem")) && !name.contains("/etc/ssl/")
        }),
        "a key in the image"
    );
    for folder in ["app/var", "app/logs"] {
        let meta = std::fs::metadata(root.join(folder)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (APP_UID, APP_UID), "{folder}");
        assert_eq!(std::fs::read_dir(root.join(folder)).unwrap().count(), 0);
    }
    assert_eq!(
        std::fs::metadata(root.join("app/go_example"))
            .unwrap()
            .uid(),
        0
    );
    assert!(root.join("etc/ssl/certs/ca-certificates.crt").is_file());
    assert!(root.join("usr/share/zoneinfo/Asia/Shanghai").is_file());

    let version = buildah
        .run(&container, &[], &[])
        .args(["/app/go_example", "version"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("go_example "),
        "{}",
        String::from_utf8_lossy(&version.stderr)
    );

    // The embedded profile on a free port, its keys the mounted secret (read-only: generating
    // would fail, so an answer means they were read).
    let dir = tempfile::tempdir().unwrap();
    let secrets = secret_keys(dir.path());
    let port = free_port();
    let env = [
        ("APP_ENV", "debug".to_owned()),
        ("APP__SERVER__HTTP__ADDR", format!("127.0.0.1:{port}")),
        ("APP__PPROF__ADDR", format!("127.0.0.1:{}", free_port())),
        ("APP__METRICS__ADDR", format!("127.0.0.1:{}", free_port())),
        ("APP__CERTS__DIR", "/app/secrets/jwt".to_owned()),
        ("APP__CERTS__CURKEY", "k1".to_owned()),
        ("APP__CERTS__KEYS__0", "k1".to_owned()),
        ("APP__CERTS__GENERATE_MISSING", "false".to_owned()),
    ];
    let mounts = [format!("{}:/app/secrets:ro", secrets.display())];
    let _app = Running(
        buildah
            .run(&container, &env, &mounts)
            .args(["/app/go_example", "http"])
            .process_group(0)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/healthz");
    assert!(
        eventually(Duration::from_secs(30), async || {
            reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().as_u16() == 200)
        })
        .await,
        "the app in the image answers /healthz"
    );
    // The image's HEALTHCHECK command, inside the image.
    let probe = buildah
        .run(&container, &env[..2], &[])
        .args(["/app/go_example", "probe", "http"])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    // It ran as the app user: the database it made is that user's.
    let db = std::fs::metadata(root.join("app/var/go_example.db")).unwrap();
    assert_eq!(db.uid(), APP_UID);
}

/// The PyPI tools of the deployment checks, pinned: one venv (scripts/python-venv.sh).
fn deploy_python() -> PathBuf {
    crate::helpers::python_venv(
        "deploy",
        &[
            "check-jsonschema==0.39.0",
            "kubernetes-validate==1.37.0",
            "pyyaml==6.0.2",
        ],
    )
}

/// A tool of the deploy venv (beside its python).
fn deploy_tool(name: &str) -> Command {
    Command::new(deploy_python().with_file_name(name))
}

fn check_compose(files: &[&Path]) -> std::process::Output {
    deploy_tool("check-jsonschema")
        .args(["--builtin-schema", "vendor.compose-spec"])
        .args(files)
        .output()
        .expect("check-jsonschema runs")
}

#[test]
fn every_compose_file_is_valid_against_the_compose_spec() {
    let root = manifest_dir();
    let files = [
        "deploy/compose/compose.yaml",
        "deploy/consul/docker-compose.yml",
        "deploy/jenkins/docker-compose.yml",
        "deploy/jaeger/docker-compose.yml",
    ]
    .map(|f| root.join(f));
    let out = check_compose(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The check can fail: a misspelt key of a service is refused.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("compose.yaml");
    let text = read("deploy/compose/compose.yaml").replace(
        "    restart: \"no\"\n",
        "    restart: \"no\"\n    restrat: always\n",
    );
    std::fs::write(&broken, text).unwrap();
    assert!(
        !check_compose(&[&broken]).status.success(),
        "restrat passed"
    );
}

/// What deploy/compose/compose.yaml gives each service of the image, as compose would
/// interpolate it from `.env.example` (tests/deploy/compose_apps.py).
fn compose_apps() -> serde_json::Map<String, serde_json::Value> {
    let root = manifest_dir();
    let out = Command::new(deploy_python())
        .arg(root.join("tests/deploy/compose_apps.py"))
        .arg(root.join("deploy/compose/compose.yaml"))
        .arg(root.join("deploy/compose/.env.example"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The environment of a service as the loader's variables.
fn env_vars(service: &serde_json::Value) -> Vec<(String, String)> {
    service["environment"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

/// Loads `vars` as the image would (its `APP_ENV` default: the Dockerfile's), with the checks
/// the app itself runs at start; the profile.
fn load_as_image(
    vars: &[(String, String)],
) -> (goex_config::Profile, go_example::meta::config::AppConfig) {
    let profile: goex_config::Profile = vars
        .iter()
        .find(|(k, _)| k == "APP_ENV")
        .map_or("prod", |(_, v)| v.as_str())
        .parse()
        .unwrap();
    let vars = vars.iter().filter(|(k, _)| k.starts_with("APP__")).cloned();
    let config = go_example::meta::config::AppConfig::load_with_vars(
        &manifest_dir().join("configs"),
        profile,
        vars,
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .settings;
    (profile, config)
}

/// seconds of a compose or Go-style duration ("15s", "1m30s").
fn seconds(text: &str) -> f64 {
    humantime_serde::re::humantime::parse_duration(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .as_secs_f64()
}

#[test]
fn every_app_of_the_compose_stack_starts_on_its_environment_alone() {
    use clap::Parser;
    let runtime = dockerfile_stages().pop().unwrap();
    assert!(
        instructions(&runtime, "ENV").any(|e| e.contains("APP_ENV=prod")),
        "the image runs the prod profile unless told otherwise"
    );
    let apps = compose_apps();
    for expected in ["keys", "certs", "migrate", "http", "grpc", "socket"] {
        assert!(apps.contains_key(expected), "no {expected} service");
    }
    assert_eq!(apps["grpc"]["replicas"], 2, "two gRPC instances");
    for (name, service) in &apps {
        let command: Vec<&str> = service["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let cli = go_example::cmd::Cli::try_parse_from(
            std::iter::once("go_example").chain(command.iter().copied()),
        )
        .unwrap_or_else(|e| panic!("{name}: {command:?}: {e}"));
        // Every command but `certs generate` loads and checks the configuration.
        if matches!(cli.command, go_example::cmd::Command::Certs(_)) {
            continue;
        }
        let vars = env_vars(service);
        let (profile, config) = load_as_image(&vars);
        assert_eq!(profile, goex_config::Profile::Prod, "{name}");
        if let Some(app @ ("http" | "grpc" | "socket")) = command.first().copied() {
            if app == "socket" {
                config
                    .server
                    .socket
                    .check_for_socket_app(profile)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            // Hardened, health-checked with the app's own probe, stopped after its drain.
            assert_eq!(service["read_only"], true, "{name}");
            assert_eq!(service["cap_drop"], serde_json::json!(["ALL"]), "{name}");
            assert_eq!(
                service["healthcheck"],
                serde_json::json!(["CMD", "/app/go_example", "probe", app]),
                "{name}"
            );
            let drain = match app {
                "http" => config.server.http.shutdown_timeout,
                "grpc" => config.server.grpc.shutdown_timeout,
                _ => config.server.socket.shutdown_timeout,
            } + config.consul.deregister_grace;
            let grace = seconds(service["stop_grace_period"].as_str().unwrap());
            assert!(
                grace > drain.as_secs_f64(),
                "{name}: stop_grace_period {grace}s within the drain {drain:?}"
            );
            // Started once the migrations ran.
            assert_eq!(
                service["depends_on"]["migrate"], "service_completed_successfully",
                "{name}"
            );
            // Behind the proxy: its forwarded addresses believed, no other.
            let trusted = match app {
                "socket" => &config.server.socket.trusted_proxies,
                _ => &config.server.http.trusted_proxies,
            };
            let proxy: std::net::IpAddr = "172.28.0.10".parse().unwrap();
            let other: std::net::IpAddr = "172.28.0.11".parse().unwrap();
            assert!(
                trusted.contains(proxy) && !trusted.contains(other),
                "{name}: trusted_proxies"
            );
        }
    }
    // The HTTP app finds the gRPC instances through Consul, where they register.
    let (_, http) = load_as_image(&env_vars(&apps["http"]));
    assert!(
        http.grpc_client.addr.starts_with("consul://"),
        "{}",
        http.grpc_client.addr
    );
    let (_, grpc) = load_as_image(&env_vars(&apps["grpc"]));
    assert!(grpc.consul.enabled && !grpc.consul.services.grpc.is_empty());
}

#[test]
fn the_init_jobs_keep_what_they_made_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let grpc = dir.path().join("grpc");
    let run = |args: &[&str]| {
        let out = crate::helpers::app_command()
            .args(args)
            .env("APP__CERTS__DIR", dir.path().join("jwt"))
            .env("APP__LOG__FILE__ENABLED", "false")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let certs = [
        "certs",
        "generate",
        "--out",
        grpc.to_str().unwrap(),
        "--if-missing",
        "--discard-ca-key",
    ];
    assert!(run(&certs).contains("the CA's key was dropped"));
    let server = std::fs::read(grpc.join(goex_certs::SERVER_CERT)).unwrap();
    assert!(
        !grpc.join(goex_certs::CA_KEY).exists(),
        "no CA key in the runtime folder"
    );
    assert!(run(&certs).contains("kept"));
    assert_eq!(
        std::fs::read(grpc.join(goex_certs::SERVER_CERT)).unwrap(),
        server
    );

    let keys = ["keys", "generate", "--name", "prod1", "--if-missing"];
    assert!(run(&keys).contains("wrote"));
    let private = dir.path().join("jwt/prod1/rsa_private_key.pem");
    let made = std::fs::read(&private).unwrap();
    assert!(run(&keys).contains("kept key prod1"));
    assert_eq!(std::fs::read(&private).unwrap(), made);
    // Without the flag, an existing key is still refused.
    let out = crate::helpers::app_command()
        .args(["keys", "generate", "--name", "prod1"])
        .env("APP__CERTS__DIR", dir.path().join("jwt"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// The Kubernetes version the manifests are validated against (kubernetes-validate's schemas).
const KUBERNETES_VERSION: &str = "1.32.0";

/// `kubectl kustomize` of an overlay, which must be kubectl 1.27 or later (kustomize 5; the
/// machine carries 1.32; Debian's kubernetes-client 1.20 is too old).
fn render(overlay: &str) -> String {
    let version = Command::new("kubectl")
        .args(["version", "--client", "-o", "json"])
        .output()
        .expect("kubectl is installed (1.27 or later)");
    let version: serde_json::Value = serde_json::from_slice(&version.stdout).unwrap();
    let minor: u32 = version["clientVersion"]["minor"]
        .as_str()
        .unwrap()
        .trim_end_matches('+')
        .parse()
        .unwrap();
    assert!(
        version["clientVersion"]["major"] == "1" && minor >= 27,
        "kubectl {version} is older than 1.27"
    );
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(manifest_dir().join("deploy/k8s/overlays").join(overlay))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize {overlay}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn validate_k8s(file: &Path) -> std::process::Output {
    deploy_tool("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", KUBERNETES_VERSION])
        .arg(file)
        .output()
        .expect("kubernetes-validate runs")
}

#[test]
fn every_rendered_kubernetes_object_is_valid_for_its_version_strictly() {
    let dir = tempfile::tempdir().unwrap();
    for overlay in ["dev", "prod"] {
        let file = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&file, render(overlay)).unwrap();
        let out = validate_k8s(&file);
        assert!(
            out.status.success(),
            "{overlay}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Strict: an unknown field fails (a misspelt probe would otherwise pass silently).
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        render("prod").replacen("readinessProbe:", "readinesProbe:", 1),
    )
    .unwrap();
    assert!(
        !validate_k8s(&broken).status.success(),
        "readinesProbe passed"
    );
}

/// The rendered objects of an overlay as JSON.
fn objects(overlay: &str) -> Vec<serde_json::Value> {
    use std::io::Write;
    let mut child = Command::new(deploy_python())
        .arg(manifest_dir().join("tests/deploy/yaml_to_json.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(render(overlay).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn of_kind<'a>(
    objects: &'a [serde_json::Value],
    kind: &str,
) -> impl Iterator<Item = &'a serde_json::Value> {
    let kind = kind.to_owned();
    objects.iter().filter(move |o| o["kind"] == kind.as_str())
}

fn named<'a>(objects: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
    of_kind(objects, kind)
        .find(|o| o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// CPU cores of a Kubernetes quantity ("250m", "1", "1.5").
fn cores(quantity: &serde_json::Value) -> f64 {
    let text = quantity.as_str().unwrap_or_else(|| panic!("{quantity}"));
    match text.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().unwrap() / 1000.0,
        None => text.parse().unwrap(),
    }
}

/// The configuration a pod of the overlay loads: its ConfigMap, and the credentials (the dev
/// overlay's generated Secret, the prod overlay's documented example), with the checks the
/// apps run at start.
fn overlay_config(
    overlay: &str,
    objects: &[serde_json::Value],
) -> (goex_config::Profile, go_example::meta::config::AppConfig) {
    use base64::Engine;
    let config_map = of_kind(objects, "ConfigMap").next().unwrap();
    let mut vars: Vec<(String, String)> = config_map["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    match of_kind(objects, "Secret").next() {
        Some(secret) => vars.extend(secret["data"].as_object().unwrap().iter().map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap().replace(char::is_whitespace, ""))
                .unwrap();
            (k.clone(), String::from_utf8(bytes).unwrap())
        })),
        None => vars.extend(
            read(&format!(
                "deploy/k8s/overlays/{overlay}/credentials.env.example"
            ))
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains('='))
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            }),
        ),
    }
    load_as_image(&vars)
}

#[test]
fn every_pod_is_probed_bounded_non_root_read_only_and_drains_within_its_grace() {
    for overlay in ["dev", "prod"] {
        let objects = objects(overlay);
        let (profile, config) = overlay_config(overlay, &objects);
        let socket_config = config.server.socket.check_for_socket_app(profile);
        assert!(socket_config.is_ok(), "{overlay}: {socket_config:?}");
        let workloads: Vec<&serde_json::Value> = of_kind(&objects, "Deployment")
            .chain(of_kind(&objects, "Job"))
            .collect();
        assert_eq!(
            workloads.len(),
            4,
            "{overlay}: three apps and the migration job"
        );
        for workload in workloads {
            let name = workload["metadata"]["name"].as_str().unwrap();
            let pod = &workload["spec"]["template"]["spec"];
            let security = &pod["securityContext"];
            assert_eq!(security["runAsNonRoot"], true, "{overlay} {name}");
            assert_ne!(security["runAsUser"], 0, "{overlay} {name}");
            // Secrets are mounted for the group (0440 with fsGroup): the loader's rule.
            assert_eq!(security["fsGroup"], APP_UID, "{overlay} {name}");
            for volume in pod["volumes"].as_array().unwrap() {
                for source in [&volume["secret"], &volume["projected"]] {
                    if !source.is_null() {
                        assert_eq!(source["defaultMode"], 0o440, "{overlay} {name}");
                    }
                }
            }
            for container in pod["containers"].as_array().unwrap() {
                let c = &container["securityContext"];
                assert_eq!(c["readOnlyRootFilesystem"], true, "{overlay} {name}");
                assert_eq!(c["allowPrivilegeEscalation"], false, "{overlay} {name}");
                assert_eq!(c["capabilities"]["drop"], serde_json::json!(["ALL"]));
                for bound in ["requests", "limits"] {
                    for resource in ["cpu", "memory"] {
                        assert!(
                            container["resources"][bound][resource].is_string(),
                            "{overlay} {name}: resources.{bound}.{resource}"
                        );
                    }
                }
                // /tmp and logs/ writable on a read-only root.
                let mounts: Vec<&str> = container["volumeMounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["mountPath"].as_str().unwrap())
                    .collect();
                assert!(mounts.contains(&"/tmp") && mounts.contains(&"/app/logs"));
                if workload["kind"] == "Job" {
                    assert_eq!(container["args"], serde_json::json!(["migrate"]));
                    continue;
                }
                // The binary's probe of its own app, for start, readiness and liveness.
                let app = container["args"][0].as_str().unwrap();
                for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                    assert_eq!(
                        container[probe]["exec"]["command"],
                        serde_json::json!(["/app/go_example", "probe", app]),
                        "{overlay} {name}: {probe}"
                    );
                }
                let drain = match app {
                    "http" => config.server.http.shutdown_timeout,
                    "grpc" => config.server.grpc.shutdown_timeout,
                    "socket" => config.server.socket.shutdown_timeout,
                    other => panic!("{other}"),
                } + config.consul.deregister_grace
                    + Duration::from_secs(
                        container["lifecycle"]["preStop"]["sleep"]["seconds"]
                            .as_u64()
                            .unwrap_or(0),
                    );
                let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
                assert!(
                    Duration::from_secs(grace) > drain,
                    "{overlay} {name}: grace {grace}s within the drain {drain:?}"
                );
                // Metrics where the annotations say, on the pod's interfaces.
                let annotations = &workload["spec"]["template"]["metadata"]["annotations"];
                let metrics_addr = match app {
                    "http" => &config.metrics.addr,
                    "grpc" => &config.metrics.grpc_addr,
                    _ => &config.metrics.socket_addr,
                };
                assert_eq!(
                    format!(
                        "0.0.0.0:{}",
                        annotations["prometheus.io/port"].as_str().unwrap()
                    ),
                    *metrics_addr,
                    "{overlay} {name}"
                );
                assert_eq!(annotations["prometheus.io/scrape"], "true");
            }
        }

        // Autoscaling on CPU below the load shedder's threshold (else shedding holds the CPU
        // down and the autoscaler never scales out).
        for hpa in of_kind(&objects, "HorizontalPodAutoscaler") {
            let target = hpa["spec"]["scaleTargetRef"]["name"].as_str().unwrap();
            let container =
                &named(&objects, "Deployment", target)["spec"]["template"]["spec"]["containers"][0];
            let utilization = hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"]
                .as_f64()
                .unwrap()
                / 100.0;
            let share = utilization * cores(&container["resources"]["requests"]["cpu"])
                / cores(&container["resources"]["limits"]["cpu"]);
            assert!(
                share < config.shedding.cpu_threshold,
                "{overlay} {target}: {share} >= shedding.cpu_threshold {}",
                config.shedding.cpu_threshold
            );
        }

        // The gRPC Service is headless and the HTTP app balances over its pods.
        let grpc = named(&objects, "Service", "go-example-grpc");
        assert_eq!(grpc["spec"]["clusterIP"], "None");
        assert_eq!(config.grpc_client.addr, "dns:///go-example-grpc:9090");
        // Rooms span socket pods only through Redis: without it, one pod, never two during a
        // rollout.
        let socket = named(&objects, "Deployment", "go-example-socket");
        if !config.redis.enabled {
            assert_eq!(socket["spec"]["replicas"], 1, "{overlay}");
            assert_eq!(socket["spec"]["strategy"]["type"], "Recreate", "{overlay}");
        }
        // The ingress's forwarded addresses are believed, and only from its network.
        assert!(!config.server.http.trusted_proxies.is_empty());
        if overlay == "prod" {
            for deployment in of_kind(&objects, "Deployment") {
                let name = deployment["metadata"]["name"].as_str().unwrap();
                assert!(
                    of_kind(&objects, "PodDisruptionBudget").any(|p| p["metadata"]["name"] == name),
                    "prod: no PodDisruptionBudget for {name}"
                );
            }
        }
    }
}

/// The families of scrapes (`# TYPE name kind`) and their sample lines.
#[derive(Default)]
struct Exported {
    kinds: std::collections::BTreeMap<String, String>,
    samples: Vec<String>,
}

impl Exported {
    fn add(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                self.kinds.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') && !line.is_empty() {
                self.samples.push(line.to_owned());
            }
        }
    }

    /// The family a queried name belongs to: itself, or a histogram's `_bucket`, `_sum`,
    /// `_count`.
    fn family_of(&self, name: &str) -> Option<&str> {
        if self.kinds.contains_key(name) {
            return Some(self.kinds.get_key_value(name).unwrap().0);
        }
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix)?;
            (self.kinds.get(base)? == "histogram")
                .then_some(self.kinds.get_key_value(base)?.0.as_str())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_and_label_the_dashboard_queries_is_exported_by_the_running_apps() {
    use crate::helpers::{redis_overrides, service_env, spawn_app_with, unique_name};
    use futures_util::SinkExt;
    let (Some(redis), Some(mongo)) = (
        service_env("APP__REDIS__ADDRS__0"),
        service_env("APP__MONGODB__ADDR"),
    ) else {
        return;
    };
    let mut exported = Exported::default();

    // The gRPC app, shedding on, called by the HTTP app below.
    let shedding = ("APP__SHEDDING__ENABLED", "true".to_owned());
    let grpc = crate::grpc::spawn_grpc_with("request", std::slice::from_ref(&shedding)).await;
    // The HTTP app on Redis and MongoDB, calling the gRPC app.
    let mut overrides = redis_overrides("single", &redis);
    overrides.extend([
        ("APP__MONGODB__ENABLED", "true".to_owned()),
        ("APP__MONGODB__ADDR", mongo),
        ("APP__MONGODB__DATABASE", unique_name("go_example_d")),
        shedding.clone(),
        (
            "APP__GRPC_CLIENT__ADDR",
            format!("https://127.0.0.1:{}", grpc.port),
        ),
        (
            "APP__GRPC_CLIENT__TLS__DIR",
            grpc.certs.display().to_string(),
        ),
    ]);
    let http = spawn_app_with(&overrides).await;
    assert_eq!(http.get("/hello?id=1").await.status().as_u16(), 200);
    assert_eq!(http.get("/no/such/route").await.status().as_u16(), 404);
    assert_eq!(http.get("/grpc/hello?id=1").await.status().as_u16(), 200);
    exported.add(&scrape_port(http.metrics_port.unwrap()).await);
    exported.add(&scrape_port(grpc.metrics_port.unwrap()).await);
    // The socket app: a connection, a message each way, a close.
    let socket = crate::socket::spawn_socket(&[]).await;
    let mut ws = crate::socket::connect(&socket.url()).await;
    ws.send(tokio_tungstenite::tungstenite::Message::text("a"))
        .await
        .unwrap();
    crate::socket::next_data(&mut ws).await;
    ws.close(None).await.unwrap();
    // And a refusal (a page of another origin).
    assert!(
        crate::socket::connect_with(&socket.url(), &[("origin", "http://evil.example")])
            .await
            .is_err()
    );
    let metrics_port = socket.metrics_port.unwrap();
    assert!(
        eventually(Duration::from_secs(5), async || {
            scrape_port(metrics_port)
                .await
                .contains("go_example_socket_closes_total{")
        })
        .await
    );
    exported.add(&scrape_port(metrics_port).await);

    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/dashboards/go_example.json")).unwrap();
    let names = fancy_regex::Regex::new(r"go_example_[a-z0-9_]+").unwrap();
    let by = fancy_regex::Regex::new(r"by \(([a-z_, ]+)\)").unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let families: Vec<&str> = names
                .find_iter(expr)
                .map(|m| {
                    let name = m.unwrap().as_str();
                    exported.family_of(name).unwrap_or_else(|| {
                        panic!("{name} (panel {}) is exported by no app", panel["title"])
                    })
                })
                .collect();
            assert!(!families.is_empty(), "{expr}");
            // Every label it groups by is on the samples of a metric it queries.
            for group in by.captures_iter(expr) {
                for label in group.unwrap()[1].split(',').map(str::trim) {
                    if ["le", "job", "instance"].contains(&label) {
                        continue;
                    }
                    assert!(
                        exported.samples.iter().any(|s| {
                            families.iter().any(|f| s.starts_with(f))
                                && s.contains(&format!("{label}=\""))
                        }),
                        "label {label} of {expr} is on no sample"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} expressions");
    // And it is the dashboard the compose stack's Grafana loads.
    assert!(
        read("deploy/grafana/provisioning/dashboards/go_example.yaml")
            .contains("/var/lib/grafana/dashboards")
    );
    assert!(
        read("deploy/compose/compose.yaml")
            .contains("../grafana/dashboards:/var/lib/grafana/dashboards")
    );
}
