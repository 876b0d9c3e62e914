//! Settings as the application reads them: a map of method → settings in the profile's YAML,
//! through the workspace's own loader (environment overrides included).

use std::collections::BTreeMap;
use std::time::Duration;

use goex_breaker::{Breaker, Policy, Settings};
use goex_config::{ConfigError, Profile, load_with_vars};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Root {
    breaker: BTreeMap<String, Settings>,
}

fn load(yaml: &str, vars: &[(&str, &str)]) -> Result<Root, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("test")).unwrap();
    std::fs::write(dir.path().join("base.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("test/common.yaml"), "").unwrap();
    let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    load_with_vars::<Root>(dir.path(), Profile::Test, vars).map(|l| l.settings)
}

const YAML: &str = "\
breaker:
  SayHello:
    timeout: 500ms
    sleep_window: 3s
  SayHelloAgain:
    policy: sre
    k: 2
    window: 5s
    buckets: 5
  Defaults: {}
";

#[test]
fn a_map_of_methods_reads_with_defaults_for_missing_keys() {
    let root = load(YAML, &[]).unwrap();
    let hello = &root.breaker["SayHello"];
    assert_eq!(hello.policy, Policy::Hystrix);
    assert_eq!(hello.timeout, Duration::from_millis(500));
    assert_eq!(hello.sleep_window, Duration::from_secs(3));
    assert_eq!(hello.max_concurrent_requests, 10);
    let again = &root.breaker["SayHelloAgain"];
    assert_eq!(
        (again.policy, again.k, again.buckets),
        (Policy::Sre, 2.0, 5)
    );
    assert_eq!(again.window, Duration::from_secs(5));
    assert_eq!(root.breaker["Defaults"], Settings::default());
    for (method, settings) in &root.breaker {
        Breaker::new(method, settings).unwrap();
    }
}

#[test]
fn environment_variables_override_per_method_keys() {
    let root = load(
        YAML,
        &[
            ("APP__BREAKER__SAYHELLO__MAX_CONCURRENT_REQUESTS", "20"),
            ("APP__BREAKER__SAYHELLOAGAIN__K", "1.25"),
            ("APP__BREAKER__SAYHELLO__POLICY", "sre"),
        ],
    )
    .unwrap();
    assert_eq!(root.breaker["SayHello"].max_concurrent_requests, 20);
    assert_eq!(root.breaker["SayHello"].policy, Policy::Sre);
    assert_eq!(root.breaker["SayHelloAgain"].k, 1.25);
}

#[test]
fn an_unknown_or_mistyped_key_fails_naming_it() {
    let err = load("breaker:\n  SayHello:\n    timout: 1s\n", &[]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("breaker.SayHello") && text.contains("timout"),
        "{text}"
    );

    let err = load("breaker:\n  SayHello:\n    policy: resilience4j\n", &[]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("breaker.SayHello.policy"), "{text}");

    let err = load("breaker:\n  SayHello:\n    timeout: soon\n", &[]).unwrap_err();
    assert!(
        err.to_string().contains("breaker.SayHello.timeout"),
        "{err}"
    );
}

#[test]
fn out_of_range_values_are_refused_at_construction() {
    let root = load(
        "breaker:\n  SayHello:\n    error_percent_threshold: 150\n",
        &[],
    )
    .unwrap();
    let err = Breaker::new("SayHello", &root.breaker["SayHello"]).unwrap_err();
    assert_eq!(err.key, "error_percent_threshold");
    assert_eq!(
        err.to_string(),
        "breaker setting `error_percent_threshold`: must be from 1 to 100"
    );
}
