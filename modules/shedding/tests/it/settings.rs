//! Settings as the application reads them: the `shedding` section of the profile's YAML,
//! through the workspace's own loader (environment overrides included).

use std::time::Duration;

use goex_config::{ConfigError, Profile, load_with_vars};
use goex_shedding::{Settings, Shedder};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Root {
    shedding: Settings,
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
shedding:
  enabled: true
  cpu_threshold: 0.8
  window: 10s
  buckets: 100
  cool_off: 2s
  sample_interval: 500ms
  ema_beta: 0.9
  min_factor: 0.2
";

#[test]
fn every_key_reads_and_missing_keys_take_go_zeros_defaults() {
    let s = load(YAML, &[]).unwrap().shedding;
    assert_eq!(
        (s.cpu_threshold, s.buckets, s.ema_beta, s.min_factor),
        (0.8, 100, 0.9, 0.2)
    );
    assert_eq!(
        (s.window, s.cool_off, s.sample_interval),
        (
            Duration::from_secs(10),
            Duration::from_secs(2),
            Duration::from_millis(500)
        )
    );
    assert_eq!(s.validate(), Ok(()));
    assert_eq!(
        load("shedding: {}\n", &[]).unwrap().shedding,
        Settings::default()
    );
}

#[test]
fn environment_variables_override_keys() {
    let s = load(
        YAML,
        &[
            ("APP__SHEDDING__ENABLED", "false"),
            ("APP__SHEDDING__CPU_THRESHOLD", "0.75"),
            ("APP__SHEDDING__COOL_OFF", "1500ms"),
        ],
    )
    .unwrap()
    .shedding;
    assert!(!s.enabled);
    assert_eq!(s.cpu_threshold, 0.75);
    assert_eq!(s.cool_off, Duration::from_millis(1500));
}

#[test]
fn an_unknown_or_mistyped_key_fails_naming_it() {
    let err = load("shedding:\n  threshold: 0.8\n", &[]).unwrap_err();
    assert!(err.to_string().contains("threshold"), "{err}");
    let err = load("shedding:\n  cool_off: soon\n", &[]).unwrap_err();
    assert!(err.to_string().contains("shedding.cool_off"), "{err}");
}

#[test]
fn out_of_range_values_are_refused_at_construction() {
    let s = load("shedding:\n  cpu_threshold: 90\n", &[])
        .unwrap()
        .shedding;
    let err = Shedder::new(&s).unwrap_err();
    assert_eq!(
        err.to_string(),
        "shedding setting `cpu_threshold`: must be above 0 and below 1"
    );
}
