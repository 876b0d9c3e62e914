//! `shedding.*`: the adaptive load shedder of the HTTP and gRPC apps (docs/overload.md). The
//! settings type and its ranges are `goex_shedding`'s; this names the key at fault as the
//! config module does everywhere (`shedding.cpu_threshold`).

use goex_config::{ConfigError, invalid};

/// `shedding.*`: checked whether on or off, so a value that would be refused in prod is
/// refused in the profile that tried it first.
pub(super) fn check_shedding(shedding: &goex_shedding::Settings) -> Result<(), ConfigError> {
    shedding
        .validate()
        .map_err(|e| invalid(&format!("shedding.{}", e.key), e.message))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use goex_config::Profile;

    use crate::meta::config::AppConfig;

    fn load(profile: Profile, vars: &[(&str, &str)]) -> Result<AppConfig, ConfigError> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        // prod's file has no usable DSN on purpose.
        vars.push((
            "APP__MYSQL__DSN".to_owned(),
            "mysql://go_example:s3cret-pw@127.0.0.1:3306/go_example".to_owned(),
        ));
        let loaded = goex_config::load_with_vars::<AppConfig>(&dir, profile, vars)?;
        loaded.settings.check(profile)?;
        Ok(loaded.settings)
    }

    use super::ConfigError;

    #[test]
    fn on_in_prod_only_with_go_zeros_constants() {
        for profile in Profile::ALL {
            let shedding = load(profile, &[]).unwrap().shedding;
            assert_eq!(shedding.enabled, profile == Profile::Prod, "{profile}");
            let defaults = goex_shedding::Settings {
                enabled: shedding.enabled,
                ..goex_shedding::Settings::default()
            };
            assert_eq!(
                shedding, defaults,
                "{profile}: base.yaml holds the crate's defaults"
            );
        }
    }

    #[test]
    fn the_environment_turns_it_on_and_sets_the_threshold() {
        let config = load(
            Profile::Test,
            &[
                ("APP__SHEDDING__ENABLED", "true"),
                ("APP__SHEDDING__CPU_THRESHOLD", "0.8"),
                ("APP__SHEDDING__COOL_OFF", "2s"),
            ],
        )
        .unwrap();
        assert!(config.shedding.enabled);
        assert_eq!(config.shedding.cpu_threshold, 0.8);
        assert_eq!(config.shedding.cool_off, Duration::from_secs(2));
        let off = load(Profile::Prod, &[("APP__SHEDDING__ENABLED", "false")]).unwrap();
        assert!(!off.shedding.enabled);
    }

    #[test]
    fn values_out_of_range_and_unknown_keys_are_refused_by_name() {
        for (var, value, key) in [
            (
                "APP__SHEDDING__CPU_THRESHOLD",
                "1.0",
                "shedding.cpu_threshold",
            ),
            (
                "APP__SHEDDING__CPU_THRESHOLD",
                "0",
                "shedding.cpu_threshold",
            ),
            ("APP__SHEDDING__BUCKETS", "0", "shedding.buckets"),
            ("APP__SHEDDING__WINDOW", "10ms", "shedding.window"),
            (
                "APP__SHEDDING__SAMPLE_INTERVAL",
                "1ms",
                "shedding.sample_interval",
            ),
            ("APP__SHEDDING__EMA_BETA", "1", "shedding.ema_beta"),
            ("APP__SHEDDING__MIN_FACTOR", "0", "shedding.min_factor"),
            (
                "APP__SHEDDING__RT_FLOOR_WINDOW",
                "1s",
                "shedding.rt_floor_window",
            ),
        ] {
            // Refused whether on or off: the value is wrong in any profile.
            for profile in [Profile::Test, Profile::Prod] {
                let message = load(profile, &[(var, value)]).unwrap_err().to_string();
                assert!(
                    message.contains(key),
                    "{var}={value} in {profile}: {message}"
                );
            }
        }
        let message = load(Profile::Test, &[("APP__SHEDDING__THRESHOLD", "0.8")])
            .unwrap_err()
            .to_string();
        assert!(message.contains("threshold"), "{message}");
    }
}
