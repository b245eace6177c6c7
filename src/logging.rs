//! Logs: `tracing` events to stderr as text (default) or JSON lines
//! (`[log] format = "json"`), filtered by a level that can change while the proxy
//! runs: [`set_level`] (the metrics endpoint's `PUT /loglevel`) and [`apply_config`]
//! (a configuration reload re-applying `[log] level`).
//!
//! The subscriber is the process's global one, installed by the binary ([`init`]). A
//! library user or a test that installs its own gets [`LevelError::NotInstalled`] from
//! the runtime controls.

use std::sync::{Mutex, OnceLock};

use tracing_subscriber::{
    EnvFilter, Registry, fmt, layer::SubscriberExt, reload, util::SubscriberInitExt,
};

use crate::config::{LogConfig, LogFormat};

/// Why the level was not changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    #[error("invalid log filter `{filter}`: {reason}")]
    Invalid { filter: String, reason: String },
    #[error("the log level of this process is not controlled by respite")]
    NotInstalled,
}

struct Control {
    handle: reload::Handle<EnvFilter, Registry>,
    current: Mutex<String>,
    /// `RUST_LOG` was set at startup: it wins over `[log] level`, on reloads too.
    from_env: bool,
    format: LogFormat,
}

static CONTROL: OnceLock<Control> = OnceLock::new();

/// Installs the global subscriber: `RUST_LOG` if set and valid, else `[log] level`,
/// else `info`. Does nothing if a subscriber is already installed.
pub fn init(config: &LogConfig) {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let (filter, current, from_env) = match env.as_deref().map(parse) {
        Some(Ok(f)) => (f, env.clone().unwrap_or_default(), true),
        _ => match parse(&config.level) {
            Ok(f) => (f, config.level.clone(), false),
            Err(_) => (EnvFilter::new("info"), "info".to_owned(), false),
        },
    };
    let (filter, handle) = reload::Layer::new(filter);
    let text =
        (config.format == LogFormat::Text).then(|| fmt::layer().with_writer(std::io::stderr));
    let json = (config.format == LogFormat::Json)
        .then(|| fmt::layer().json().with_writer(std::io::stderr));
    if tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .try_init()
        .is_ok()
    {
        let _ = CONTROL.set(Control {
            handle,
            current: Mutex::new(current),
            from_env,
            format: config.format,
        });
    }
}

/// Parses a `tracing` filter (`info`, `respite=debug,warn`) as `RUST_LOG` would.
pub fn parse(filter: &str) -> Result<EnvFilter, LevelError> {
    let invalid = |reason: String| LevelError::Invalid {
        filter: filter.to_owned(),
        reason,
    };
    if filter.trim().is_empty() {
        return Err(invalid("empty".into()));
    }
    EnvFilter::builder()
        .parse(filter.trim())
        .map_err(|e| invalid(e.to_string()))
}

/// Replaces the level filter now.
pub fn set_level(filter: &str) -> Result<(), LevelError> {
    let control = CONTROL.get().ok_or(LevelError::NotInstalled)?;
    let parsed = parse(filter)?;
    control
        .handle
        .reload(parsed)
        .map_err(|_| LevelError::NotInstalled)?;
    *control.current.lock().expect("log level") = filter.trim().to_owned();
    tracing::info!(filter = filter.trim(), "log level changed");
    Ok(())
}

/// The filter in force, if respite installed the subscriber.
pub fn current_level() -> Option<String> {
    CONTROL
        .get()
        .map(|c| c.current.lock().expect("log level").clone())
}

/// For a configuration reload: applies `[log] level` unless `RUST_LOG` was set at
/// startup (which keeps precedence). A changed `[log] format` needs a restart.
pub fn apply_config(config: &LogConfig) -> Result<(), LevelError> {
    let control = CONTROL.get().ok_or(LevelError::NotInstalled)?;
    if control.format != config.format {
        tracing::warn!("log.format changes take effect after a restart");
    }
    if control.from_env {
        return Ok(());
    }
    if current_level().as_deref() == Some(config.level.trim()) {
        return Ok(());
    }
    set_level(&config.level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_like_rust_log() {
        assert!(parse("info").is_ok());
        assert!(parse("respite=debug,warn").is_ok());
        assert!(matches!(parse(""), Err(LevelError::Invalid { .. })));
        assert!(matches!(
            parse("respite=[bogus"),
            Err(LevelError::Invalid { .. })
        ));
    }

    #[test]
    fn without_init_the_level_is_not_ours() {
        // Unit tests never call `init`.
        assert_eq!(set_level("debug"), Err(LevelError::NotInstalled));
        assert_eq!(current_level(), None);
    }
}
