//! The shipped profiles load and pass their checks, and each check refuses what it should,
//! naming the key.

use super::*;

#[test]
fn go_style_addresses_parse() {
    assert_eq!(parse_addr(":8080").unwrap().port(), 8080);
    assert_eq!(parse_addr("127.0.0.1:0").unwrap().port(), 0);
    assert!(parse_addr("localhost").is_err());
}

/// A production-like DSN: prod refuses root and empty passwords.
const APP_DSN: &str = "mysql://go_example:s3cret-pw@127.0.0.1:3306/go_example";

#[test]
fn every_shipped_profile_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    for profile in Profile::ALL {
        // prod's file has no usable DSN on purpose: APP__MYSQL__DSN provides it.
        let vars = match profile {
            Profile::Prod => vec![("APP__MYSQL__DSN".to_owned(), APP_DSN.to_owned())],
            _ => Vec::new(),
        };
        let loaded = goex_config::load_with_vars::<AppConfig>(&dir, profile, vars)
            .unwrap_or_else(|e| panic!("{profile}: {e}"));
        loaded
            .settings
            .check(profile)
            .unwrap_or_else(|e| panic!("{profile}: {e}"));
    }
}

/// Loads a shipped profile (prod with an application DSN, as it runs).
fn shipped(profile: Profile) -> AppConfig {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let vars = [("APP__MYSQL__DSN".to_owned(), APP_DSN.to_owned())];
    goex_config::load_with_vars::<AppConfig>(&dir, profile, vars)
        .unwrap_or_else(|e| panic!("{profile}: {e}"))
        .settings
}

/// The overlays change what they name and nothing else: each profile's telling values, as
/// they were when every profile was a full copy.
#[test]
fn each_profile_is_the_base_with_its_overlay() {
    let [debug, dev, test, prod] = Profile::ALL.map(shipped);
    let row = |c: &AppConfig| {
        (
            c.server.mode.clone(),
            c.server.http.addr.clone(),
            c.database.driver,
            c.redis.enabled,
            c.certs.cur_key.clone(),
            c.certs.dir.clone(),
            c.log.file.enabled,
        )
    };
    use goex_database::Driver::{Mysql, Sqlite};
    let s = String::from;
    assert_eq!(
        row(&debug),
        (
            s("debug"),
            s("127.0.0.1:8080"),
            Sqlite,
            false,
            s("dev"),
            s("var/certs"),
            true
        )
    );
    assert_eq!(
        row(&dev),
        (
            s("debug"),
            s("127.0.0.1:8080"),
            Mysql,
            true,
            s("dev"),
            s("assets/certs"),
            true
        )
    );
    assert_eq!(
        row(&test),
        (
            s("test"),
            s(":8080"),
            Sqlite,
            false,
            s("test"),
            s("var/certs"),
            false
        )
    );
    assert_eq!(
        row(&prod),
        (
            s("release"),
            s(":8080"),
            Mysql,
            true,
            s("prod1"),
            s("/etc/go_example/certs"),
            true
        )
    );
    // Untouched by every overlay: the base's value everywhere.
    for c in [&debug, &dev, &test, &prod] {
        assert_eq!(c.sms.max_per_phone, 10);
        assert_eq!(c.consul.tags, ["my_grpc"]);
        assert_eq!(c.grpc_client.breaker.len(), 1);
    }
    assert_eq!(test.server.grpc.addr, "127.0.0.1:0");
    assert_eq!(test.certs.algorithm, goex_jwt::Algorithm::EdDSA);
    assert!(!prod.server.debug_routes && !prod.server.http.swagger_ui);
    assert_eq!(prod.sms.provider, SmsProvider::Alibaba);
}

/// prod's overlay empties lists the base fills (`[]` replaces, never merges by position).
#[test]
fn prod_clears_the_base_allow_lists() {
    let debug = shipped(Profile::Debug);
    let prod = shipped(Profile::Prod);
    assert!(!debug.server.socket.allowed_origins.is_empty());
    assert_eq!(debug.server.socket.public_rooms, ["lobby"]);
    assert!(prod.server.socket.allowed_origins.is_empty());
    assert!(prod.server.socket.public_rooms.is_empty());
    // And the socket app's prod check is what then asks for origins.
    assert!(
        prod.server
            .socket
            .check_for_socket_app(Profile::Prod)
            .is_err()
    );
}

/// Loads `profile` with `vars` and runs the checks.
fn check_with(profile: Profile, vars: &[(&str, &str)]) -> Result<(), ConfigError> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    goex_config::load_with_vars::<AppConfig>(&dir, profile, vars)?
        .settings
        .check(profile)
}

/// The error of a check that must fail, as text.
fn refused(profile: Profile, vars: &[(&str, &str)]) -> String {
    match check_with(profile, vars) {
        Ok(()) => panic!("{profile} {vars:?} accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn limits_and_windows_must_be_positive() {
    for (var, key) in [
        ("APP__AUTH__MAX_FAILURES", "auth.max_failures"),
        ("APP__AUTH__FAILURE_WINDOW", "auth.failure_window"),
        ("APP__AUTH__MAX_REGISTRATIONS", "auth.max_registrations"),
        ("APP__AUTH__REGISTRATION_WINDOW", "auth.registration_window"),
        (
            "APP__AUTH__HASH_ACQUIRE_TIMEOUT",
            "auth.hash_acquire_timeout",
        ),
        (
            "APP__SERVER__HTTP__BODY_TIMEOUT",
            "server.http.body_timeout",
        ),
    ] {
        let zero = if key.starts_with("auth.max_") {
            "0"
        } else {
            "0s"
        };
        let message = refused(Profile::Test, &[(var, zero)]);
        assert!(
            message.contains(key) && message.contains("greater than 0"),
            "{message}"
        );
    }
    for var in ["APP__AUTH__MAX_FAILURES", "APP__AUTH__MAX_REGISTRATIONS"] {
        assert!(refused(Profile::Test, &[(var, "-1")]).contains("greater than 0"));
    }
    check_with(Profile::Test, &[("APP__AUTH__FAILURE_WINDOW", "1s")]).unwrap();
}

#[test]
fn a_socket_frame_may_not_exceed_a_message() {
    let message = refused(
        Profile::Test,
        &[
            ("APP__SERVER__SOCKET__MAX_FRAME_SIZE", "2048"),
            ("APP__SERVER__SOCKET__MAX_MESSAGE_SIZE", "1024"),
        ],
    );
    assert!(
        message.contains("server.socket.max_frame_size")
            && message.contains("server.socket.max_message_size"),
        "{message}"
    );
    check_with(
        Profile::Test,
        &[
            ("APP__SERVER__SOCKET__MAX_FRAME_SIZE", "1024"),
            ("APP__SERVER__SOCKET__MAX_MESSAGE_SIZE", "1024"),
        ],
    )
    .unwrap();
}

#[test]
fn an_ejection_lasts_and_its_cap_is_not_below_its_start() {
    let message = refused(
        Profile::Test,
        &[("APP__GRPC_CLIENT__EJECTION_INITIAL", "0s")],
    );
    assert!(
        message.contains("grpc_client.ejection_initial") && message.contains("greater than 0"),
        "{message}"
    );
    let message = refused(
        Profile::Test,
        &[
            ("APP__GRPC_CLIENT__EJECTION_INITIAL", "5s"),
            ("APP__GRPC_CLIENT__EJECTION_MAX", "2s"),
        ],
    );
    assert!(message.contains("grpc_client.ejection_max"), "{message}");
    check_with(
        Profile::Test,
        &[
            ("APP__GRPC_CLIENT__EJECTION_INITIAL", "5s"),
            ("APP__GRPC_CLIENT__EJECTION_MAX", "5s"),
        ],
    )
    .unwrap();
}

#[test]
fn socket_limits_must_be_positive_and_public_rooms_valid() {
    for (var, key) in [
        (
            "APP__SERVER__SOCKET__MAX_PER_ADDRESS__HOST",
            "server.socket.max_per_address.host",
        ),
        (
            "APP__SERVER__SOCKET__MAX_PER_ADDRESS__NETWORK",
            "server.socket.max_per_address.network",
        ),
        (
            "APP__SERVER__SOCKET__MAX_ANONYMOUS",
            "server.socket.max_anonymous",
        ),
        (
            "APP__SERVER__SOCKET__OUTBOUND_QUEUE_BYTES",
            "server.socket.outbound_queue_bytes",
        ),
        (
            "APP__SERVER__SOCKET__MAX_MESSAGES_PER_SECOND",
            "server.socket.max_messages_per_second",
        ),
    ] {
        let message = refused(Profile::Test, &[(var, "0")]);
        assert!(
            message.contains(key) && message.contains("greater than 0"),
            "{message}"
        );
    }
    for bad in ["a b", "*x", "é*", "r*x"] {
        let message = refused(
            Profile::Test,
            &[("APP__SERVER__SOCKET__PUBLIC_ROOMS__0", bad)],
        );
        assert!(
            message.contains("server.socket.public_rooms[0]"),
            "{bad:?}: {message}"
        );
    }
    for good in ["lobby", "public-*", "*"] {
        check_with(
            Profile::Test,
            &[("APP__SERVER__SOCKET__PUBLIC_ROOMS__0", good)],
        )
        .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

#[test]
fn consul_allowed_networks_parse_and_are_required_in_prod() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let load = |profile: Profile| {
        goex_config::load_with_vars::<AppConfig>(
            &dir,
            profile,
            [("APP__MYSQL__DSN".to_owned(), APP_DSN.to_owned())],
        )
        .unwrap()
        .settings
    };
    let mut prod = load(Profile::Prod);
    let nets = prod.consul.networks();
    for inside in [
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "172.31.0.1",
        "192.168.1.1",
        "fd00::1",
    ] {
        let ip: std::net::IpAddr = inside.parse().unwrap();
        assert!(nets.iter().any(|n| n.contains(&ip)), "{inside}");
    }
    for outside in ["8.8.8.8", "172.32.0.1", "2001:4860::8888"] {
        let ip: std::net::IpAddr = outside.parse().unwrap();
        assert!(!nets.iter().any(|n| n.contains(&ip)), "{outside}");
    }
    prod.consul.allowed_networks.clear();
    let message = prod.check(Profile::Prod).unwrap_err().to_string();
    assert!(message.contains("consul.allowed_networks"), "{message}");
    let mut test = load(Profile::Test);
    test.consul.allowed_networks.clear();
    test.check(Profile::Test).unwrap();
    let message = refused(
        Profile::Test,
        &[("APP__CONSUL__ALLOWED_NETWORKS__0", "10.0.0.0/33")],
    );
    assert!(message.contains("consul.allowed_networks"), "{message}");
    check_with(
        Profile::Test,
        &[("APP__CONSUL__ALLOWED_NETWORKS__0", "10.0.0.5")],
    )
    .unwrap();
}

#[test]
fn the_socket_app_needs_allowed_origins_in_prod_only() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let load = |profile: Profile, vars: &[(&str, &str)]| {
        let mut all = vec![("APP__MYSQL__DSN".to_owned(), APP_DSN.to_owned())];
        all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        goex_config::load_with_vars::<AppConfig>(&dir, profile, all)
            .unwrap()
            .settings
    };
    let message = load(Profile::Prod, &[])
        .server
        .socket
        .check_for_socket_app(Profile::Prod)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("server.socket.allowed_origins"),
        "{message}"
    );
    load(
        Profile::Prod,
        &[(
            "APP__SERVER__SOCKET__ALLOWED_ORIGINS__0",
            "https://app.example.com",
        )],
    )
    .server
    .socket
    .check_for_socket_app(Profile::Prod)
    .unwrap();
    // Same-origin stays a convenience of the other profiles.
    let mut dev = load(Profile::Dev, &[]).server.socket;
    dev.allowed_origins = Default::default();
    dev.check_for_socket_app(Profile::Dev).unwrap();
}

#[test]
fn the_profiler_stays_on_loopback_unless_allowed() {
    let on = ("APP__PPROF__ENABLED", "true");
    for addr in ["0.0.0.0:6060", ":6060", "10.1.2.3:6060", "[::]:6060"] {
        let message = refused(Profile::Test, &[on, ("APP__PPROF__ADDR", addr)]);
        assert!(
            message.contains("pprof.addr") && message.contains("pprof.allow_remote"),
            "{message}"
        );
        check_with(
            Profile::Test,
            &[
                on,
                ("APP__PPROF__ADDR", addr),
                ("APP__PPROF__ALLOW_REMOTE", "true"),
            ],
        )
        .unwrap_or_else(|e| panic!("{addr}: {e}"));
    }
    for addr in ["127.0.0.1:6060", "[::1]:6060", "127.0.0.2:0"] {
        check_with(Profile::Test, &[on, ("APP__PPROF__ADDR", addr)])
            .unwrap_or_else(|e| panic!("{addr}: {e}"));
    }
    // Off, the address is not looked at.
    check_with(Profile::Test, &[("APP__PPROF__ADDR", ":6060")]).unwrap();
}

#[test]
fn prod_refuses_root_and_empty_mysql_passwords_without_printing_them() {
    let prod = |vars: &[(&str, &str)]| {
        let mut all = vec![("APP__MYSQL__DSN", APP_DSN)];
        all.extend_from_slice(vars);
        check_with(Profile::Prod, &all)
    };
    prod(&[]).unwrap();
    prod(&[("APP__MYSQL__DSN", "app:p@ss:w0rd@tcp(db:3306)/go_example")]).unwrap();
    for (dsn, why) in [
        ("mysql://root:hunter2@db:3306/go_example", "root"),
        ("root:hunter2@tcp(db:3306)/go_example", "root"),
        ("mysql://%72oot:hunter2@db:3306/go_example", "root"),
        ("mysql://db:3306/go_example", "root"),
        ("mysql://app@db:3306/go_example", "empty password"),
        ("mysql://app:@db:3306/go_example", "empty password"),
        ("app@tcp(db:3306)/go_example", "empty password"),
    ] {
        let message = prod(&[("APP__MYSQL__DSN", dsn)]).unwrap_err().to_string();
        assert!(
            message.contains("mysql.dsn") && message.contains(why),
            "{dsn}: {message}"
        );
        assert!(
            !message.contains("hunter2") && !message.contains("db:3306"),
            "{message}"
        );
    }
    let message = prod(&[("APP__MYSQL__DSN", "hunter2")])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("mysql.dsn") && !message.contains("hunter2"),
        "{message}"
    );
    // Every replica is checked, and named by position.
    let message = prod(&[
        (
            "APP__MYSQL__REPLICAS__0__DSN",
            "mysql://reader:pw@r0:3306/go_example",
        ),
        (
            "APP__MYSQL__REPLICAS__1__DSN",
            "mysql://root:hunter2@r1:3306/go_example",
        ),
    ])
    .unwrap_err()
    .to_string();
    assert!(message.contains("mysql.replicas[1].dsn"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    prod(&[(
        "APP__MYSQL__REPLICAS__0__DSN",
        "mysql://reader:pw@r0:3306/go_example",
    )])
    .unwrap();
    // Only prod, and only with MySQL selected.
    check_with(Profile::Dev, &[("APP__MYSQL__DSN", "mysql://root@db/x")]).unwrap();
    check_with(
        Profile::Prod,
        &[
            ("APP__DATABASE__DRIVER", "sqlite"),
            ("APP__MYSQL__DSN", "mysql://root@db/x"),
        ],
    )
    .unwrap();
}

#[test]
fn more_rate_limit_rules_than_a_store_keeps_are_refused() {
    let mut config = shipped(Profile::Test);
    let rule = config.rate_limit.rules[0].clone();
    config.rate_limit.rules = (0..=MAX_RULES)
        .map(|i| RateLimitRule {
            name: format!("rule-{i}"),
            ..rule.clone()
        })
        .collect();
    let message = config.check(Profile::Test).unwrap_err().to_string();
    assert!(message.contains("rate_limit.rules"), "{message}");
    assert!(message.contains("at most 1024"), "{message}");
    config.rate_limit.rules.pop();
    config.check(Profile::Test).unwrap();
}

#[test]
fn rate_limit_rules_are_checked_naming_the_key() {
    /// The variables, the key the error names, and a word of its reason.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[("APP__RATE_LIMIT__RULES__1__NAME", "hello-by-id")],
            "rate_limit.rules[1].name",
            "unique",
        ),
        (
            &[("APP__RATE_LIMIT__RULES__0__BURST", "0")],
            "rate_limit.rules[0].burst",
            "greater than 0",
        ),
        (
            &[("APP__RATE_LIMIT__RULES__0__PERIOD", "0s")],
            "rate_limit.rules[0].period",
            "greater than 0",
        ),
        (
            &[("APP__RATE_LIMIT__RULES__0__IPV4_PREFIX", "33")],
            "rate_limit.rules[0].ipv4_prefix",
            "1..=32",
        ),
        (
            &[("APP__RATE_LIMIT__RULES__0__IPV6_PREFIX__0", "0")],
            "rate_limit.rules[0].ipv6_prefix",
            "1..=128",
        ),
        (
            &[("APP__RATE_LIMIT__RULES__0__METHODS__0", "get")],
            "rate_limit.rules[0].methods",
            "not one of",
        ),
        (
            &[("APP__RATE_LIMIT__RULES__0__KEY", "ip")],
            "rate_limit.rules[0].key",
            "does not have variant",
        ),
        (
            &[("APP__RATE_LIMIT__RULES__0__ROUTE", "hello")],
            "rate_limit.rules[0].route",
            "starts with /",
        ),
        (
            &[("APP__RATE_LIMIT__RULES__0__TAG", "hello")],
            "rate_limit.rules[0].tag",
            "not both",
        ),
        (
            &[
                ("APP__RATE_LIMIT__RULES__3__NAME", "nothing"),
                ("APP__RATE_LIMIT__RULES__3__RATE", "1"),
                ("APP__RATE_LIMIT__RULES__3__PERIOD", "1s"),
                ("APP__RATE_LIMIT__RULES__3__BURST", "1"),
            ],
            "rate_limit.rules[3].route",
            "route, tag or grpc",
        ),
        (
            &[("APP__RATE_LIMIT__RULES__0__RULE", "x")],
            "rate_limit.rules[0]",
            "unknown field",
        ),
    ];
    for (vars, key, why) in cases {
        let message = refused(Profile::Test, vars);
        assert!(
            message.contains(key) && message.contains(why),
            "{vars:?}: {message}"
        );
    }
    // A width list, and one width spelled as digits, are accepted; so is a gRPC-only rule.
    check_with(
        Profile::Test,
        &[
            ("APP__RATE_LIMIT__RULES__0__IPV4_PREFIX__0", "32"),
            ("APP__RATE_LIMIT__RULES__0__IPV4_PREFIX__1", "24"),
            ("APP__RATE_LIMIT__RULES__1__IPV6_PREFIX", "48"),
            ("APP__RATE_LIMIT__RULES__3__NAME", "grpc-users"),
            ("APP__RATE_LIMIT__RULES__3__GRPC", "/user.UserService/"),
            ("APP__RATE_LIMIT__RULES__3__RATE", "10"),
            ("APP__RATE_LIMIT__RULES__3__PERIOD", "1s"),
            ("APP__RATE_LIMIT__RULES__3__BURST", "10"),
            ("APP__RATE_LIMIT__RULES__3__KEY", "both"),
        ],
    )
    .unwrap();
    let config = shipped(Profile::Prod);
    let names: Vec<&str> = config
        .rate_limit
        .rules
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["hello-by-id", "excel-export", "grpc-hello"]);
}

/// Loads the test profile as the binary does (`OTEL_*` aliases included), checks and all.
fn load_traced(vars: &[(&str, &str)]) -> Result<LoadedConfig, ConfigError> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    AppConfig::load_with_vars(&dir, Profile::Test, vars)
}

#[test]
fn tracing_is_off_by_default_in_every_profile() {
    for profile in Profile::ALL {
        let tracing = shipped(profile).tracing;
        assert!(!tracing.enabled, "{profile}");
        assert!(tracing.queue_size >= tracing.batch_size, "{profile}");
    }
}

#[test]
fn otel_variables_set_tracing_keys_and_app_variables_win() {
    let loaded = load_traced(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ("OTEL_SERVICE_NAME", "shop"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.namespace=eu,deployment.environment.name=staging",
        ),
    ])
    .unwrap();
    let tracing = &loaded.settings.tracing;
    let attributes = tracing.resource_attributes.parse().unwrap();
    assert_eq!(tracing.endpoint, "http://collector:4317");
    assert_eq!(
        [
            &tracing.service_name.http,
            &tracing.service_name.grpc,
            &tracing.service_name.socket
        ],
        ["shop"; 3]
    );
    assert_eq!(attributes["service.namespace"], "eu");
    assert_eq!(attributes["deployment.environment.name"], "staging");
    assert_eq!(
        loaded.origin_of("tracing.endpoint"),
        "environment variable OTEL_EXPORTER_OTLP_ENDPOINT"
    );

    let loaded = load_traced(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ("APP__TRACING__ENDPOINT", "http://agent:4317"),
        ("OTEL_SERVICE_NAME", "shop"),
        ("APP__TRACING__SERVICE_NAME__GRPC", "shop-rpc"),
        ("OTEL_RESOURCE_ATTRIBUTES", "a=1"),
        ("APP__TRACING__RESOURCE_ATTRIBUTES", "b=2"),
    ])
    .unwrap();
    let tracing = &loaded.settings.tracing;
    assert_eq!(tracing.endpoint, "http://agent:4317");
    assert_eq!(tracing.service_name.http, "shop");
    assert_eq!(tracing.service_name.grpc, "shop-rpc");
    assert_eq!(
        tracing
            .resource_attributes
            .parse()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["b"]
    );
    assert_eq!(
        loaded.origin_of("tracing.endpoint"),
        "environment variable APP__TRACING__ENDPOINT"
    );

    // Without the aliases (goex_config's plain loader) the standard variables are nobody's.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let plain = goex_config::load_with_vars::<AppConfig>(
        &dir,
        Profile::Test,
        [("OTEL_SERVICE_NAME".to_owned(), "shop".to_owned())],
    )
    .unwrap();
    assert_eq!(plain.settings.tracing.service_name.http, "go_example-http");
}

#[test]
fn a_bad_otel_value_names_the_variable() {
    let text = load_traced(&[
        ("APP__TRACING__ENABLED", "true"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("tracing.endpoint") && text.contains("OTEL_EXPORTER_OTLP_ENDPOINT"),
        "{text}"
    );
    let text = load_traced(&[
        ("APP__TRACING__ENABLED", "true"),
        ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("tracing.resource_attributes") && text.contains("OTEL_RESOURCE_ATTRIBUTES"),
        "{text}"
    );
}

/// With tracing off, nothing changes: bad standard variables (set for another process, or for
/// the day tracing is turned on) stop no start.
#[test]
fn bad_otel_values_stop_no_start_with_tracing_off() {
    let loaded = load_traced(&[
        ("OTEL_RESOURCE_ATTRIBUTES", "novalue,=x,k=%zz"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_SERVICE_NAME", " "),
    ])
    .unwrap();
    assert!(!loaded.settings.tracing.enabled);
}

/// An empty standard variable counts as unset (the OpenTelemetry specification's rule).
#[test]
fn empty_otel_values_count_as_unset() {
    let loaded = load_traced(&[
        ("APP__TRACING__ENABLED", "true"),
        ("OTEL_SERVICE_NAME", ""),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
        ("OTEL_RESOURCE_ATTRIBUTES", ""),
    ])
    .unwrap();
    let tracing = &loaded.settings.tracing;
    assert_eq!(tracing.service_name.http, "go_example-http");
    assert_eq!(tracing.endpoint, "http://127.0.0.1:4317");
    assert!(loaded.origin_of("tracing.endpoint").ends_with("base.yaml"));
}

#[test]
fn tracing_values_are_checked_when_on_only() {
    let on = ("APP__TRACING__ENABLED", "true");
    for (vars, key) in [
        (
            vec![on, ("APP__TRACING__SAMPLE_RATIO", "1.5")],
            "tracing.sample_ratio",
        ),
        (
            vec![on, ("APP__TRACING__SAMPLE_RATIO", "-0.1")],
            "tracing.sample_ratio",
        ),
        (
            vec![on, ("APP__TRACING__ENDPOINT", "https://c:4317")],
            "tracing.endpoint",
        ),
        (
            vec![on, ("APP__TRACING__BATCH_SIZE", "0")],
            "tracing.batch_size",
        ),
        (
            vec![on, ("APP__TRACING__QUEUE_SIZE", "100")],
            "tracing.batch_size",
        ),
        (
            vec![on, ("APP__TRACING__EXPORT_TIMEOUT", "0s")],
            "tracing.export_timeout",
        ),
        (
            vec![
                on,
                ("APP__TRACING__QUEUE_SIZE", "10000000"),
                ("APP__TRACING__BATCH_SIZE", "512"),
            ],
            "tracing.queue_size",
        ),
        (
            vec![on, ("APP__TRACING__SHUTDOWN_TIMEOUT", "0s")],
            "tracing.shutdown_timeout",
        ),
        (
            vec![on, ("APP__TRACING__SERVICE_NAME__HTTP", " ")],
            "tracing.service_name.http",
        ),
    ] {
        let text = refused(Profile::Test, &vars);
        assert!(text.contains(key), "{vars:?}: {text}");
    }
    check_with(Profile::Test, &[("APP__TRACING__SAMPLE_RATIO", "7")]).unwrap();
    check_with(Profile::Test, &[on]).unwrap();
    // The endpoint is read as the tracer reads it (goex_tracing::parse_endpoint): blanks around
    // it are fine, a user or password is refused without being repeated.
    check_with(
        Profile::Test,
        &[on, ("APP__TRACING__ENDPOINT", " http://c:4317 ")],
    )
    .unwrap();
    let text = refused(
        Profile::Test,
        &[on, ("APP__TRACING__ENDPOINT", "http://user:secret@c:4317")],
    );
    assert!(
        text.contains("tracing.endpoint") && !text.contains("secret"),
        "{text}"
    );
}
