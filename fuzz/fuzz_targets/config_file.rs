//! The config-file parser: any text is refused with an error or yields a configuration whose
//! every value is within the bounds `ferry serve` relies on.
#![no_main]

use ferry::config::Config;
use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path};

fuzz_target!(|text: &str| {
    let config = match Config::from_file_text(Path::new("ferry.toml"), text) {
        Ok(config) => config,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    assert!(config.max_sessions >= 1 && config.max_sessions_per_ip >= 1);
    assert!(config.max_concurrent_logins >= 1);
    assert!(config.idle_timeout.as_secs() >= 1 && config.login_timeout.as_secs() >= 1);
    assert!(*config.passive_ports.start() >= 1);
    assert!(config.passive_ports.start() <= config.passive_ports.end());
    assert!(
        !config.greeting.chars().any(char::is_control),
        "{:?}",
        config.greeting
    );
    assert!(!config.root.as_os_str().is_empty());
    assert!(!config.users_file.as_os_str().is_empty());
    assert!(
        config
            .anonymous_home
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir)),
        "{:?}",
        config.anonymous_home
    );
    if let Some(policy) = &config.login_failures {
        assert!(policy.max_attempts >= 1 && policy.ban.as_secs() >= 1);
    }
});
