//! Settings in three layers, the same for every daemon: command-line flags win over
//! environment variables (clap's `env =`), which win over the TOML file named by
//! `--config`; what none of them sets takes the documented default afterwards.
//!
//! A settings struct derives `clap::Parser`, `Serialize` and `Deserialize`, keeps
//! every field optional (no clap `default_value`: a default would hide the file's
//! value), and applies defaults when it turns into the daemon's runtime config.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Settings that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("settings file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("setting {key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error("setting {key} is required: {hint}")]
    Missing { key: &'static str, hint: String },
}

impl SettingsError {
    /// A value that does not make sense (out of range, malformed).
    pub fn invalid(key: impl Into<String>, reason: impl ToString) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.to_string(),
        }
    }

    /// A required setting nobody set; `flag` and `env` say where it can come from.
    pub fn missing(key: &'static str, flag: &str, env: &str) -> Self {
        Self::Missing {
            key,
            hint: format!("pass --{flag}, set {env}, or put `{key} = ...` in the settings file"),
        }
    }
}

/// Reads a TOML settings file into `T` (unknown keys are refused when `T` says
/// `deny_unknown_fields`, which every settings struct should).
pub fn read_file<T: DeserializeOwned>(path: &Path) -> Result<T, SettingsError> {
    let file_error = |reason: String| SettingsError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    toml::from_str(&text).map_err(|e| file_error(e.message().to_owned()))
}

/// `cli` (flags and environment, as clap parsed them) over the file at `file`:
/// every key `cli` sets wins, every key it leaves unset (`None`) comes from the file.
/// Without a file, `cli` as it is.
pub fn layered<T>(cli: T, file: Option<&Path>) -> Result<T, SettingsError>
where
    T: Serialize + DeserializeOwned,
{
    let Some(path) = file else {
        return Ok(cli);
    };
    let from_file: serde_json::Value = {
        let parsed: T = read_file(path)?;
        to_value(&parsed)?
    };
    let mut merged = from_file;
    let over = to_value(&cli)?;
    overlay(&mut merged, over);
    serde_json::from_value(merged).map_err(|e| SettingsError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn to_value<T: Serialize>(t: &T) -> Result<serde_json::Value, SettingsError> {
    serde_json::to_value(t).map_err(|e| SettingsError::invalid("settings", e))
}

/// Writes every non-null key of `over` into `base`, recursing into tables, so that a
/// flag replaces one key of a file's table without dropping the others.
fn overlay(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(base), serde_json::Value::Object(over)) => {
            for (key, value) in over {
                if value.is_null() {
                    continue;
                }
                match base.get_mut(&key) {
                    Some(slot) if slot.is_object() && value.is_object() => overlay(slot, value),
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) if !over.is_null() => *base = over,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde::Deserialize;

    #[derive(Debug, Default, Parser, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Demo {
        #[arg(long)]
        #[serde(skip)]
        config: Option<std::path::PathBuf>,
        #[arg(long, env = "VPNCTL_DAEMON_TEST_LISTEN")]
        listen: Option<String>,
        #[arg(long)]
        level: Option<u32>,
        #[arg(skip)]
        table: Option<Inner>,
    }

    #[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        a: Option<u32>,
        b: Option<u32>,
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn flags_win_over_the_file_and_fill_the_rest() {
        let f = file("listen = \"file:1\"\nlevel = 3\n[table]\na = 1\nb = 2\n");
        let cli = Demo::parse_from(["demo", "--listen", "flag:2"]);
        let merged = layered(cli, Some(f.path())).unwrap();
        assert_eq!(merged.listen.as_deref(), Some("flag:2"));
        assert_eq!(merged.level, Some(3));
        assert_eq!(
            merged.table,
            Some(Inner {
                a: Some(1),
                b: Some(2)
            })
        );
    }

    #[test]
    fn no_file_keeps_the_command_line() {
        let cli = Demo::parse_from(["demo", "--level", "7"]);
        let merged = layered(cli, None).unwrap();
        assert_eq!(merged.level, Some(7));
    }

    #[test]
    fn file_errors_name_the_file_and_the_problem() {
        let f = file("nonsense = 1\n");
        let err = layered(Demo::default(), Some(f.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&f.path().display().to_string()), "{err}");
        assert!(err.contains("nonsense"), "{err}");
        let missing = layered(Demo::default(), Some(Path::new("/nonexistent/x.toml")))
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("settings file /nonexistent/x.toml:"),
            "{missing}"
        );
        let m = SettingsError::missing("api_url", "api-url", "VPNCTL_API_URL").to_string();
        assert_eq!(
            m,
            "setting api_url is required: pass --api-url, set VPNCTL_API_URL, or put `api_url = ...` in the settings file"
        );
    }
}
