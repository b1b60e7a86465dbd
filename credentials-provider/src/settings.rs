//! Settings: a `.env`-style file, overlaid by the process environment.
//!
//! The file holds `NAME=value` lines (an optional `export ` prefix, `#` comments, single- or
//! double-quoted values). A variable set in the environment wins over the file, as with
//! dotenv: a one-off `INGRESS_OAUTH_CLIENT_ID=… credentials-provider` does what it says.
//! Nothing is interpolated (`$OTHER` stays literally `$OTHER`). An empty value counts as unset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why the settings could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The file named with `--env-file` cannot be read.
    #[error("cannot read {}: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        reason: String,
    },
    /// A line of the file is not `NAME=value`.
    #[error("{}:{line}: {reason}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// A required variable is missing or a value is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A variable that this run needs is not set.
    #[error("{name} is not set ({why})")]
    Missing {
        /// The variable.
        name: String,
        /// What it is for.
        why: String,
    },
    /// A variable is set to something unusable.
    #[error("{name}: {reason}")]
    Invalid {
        /// The variable (or flag).
        name: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

impl ConfigError {
    /// A [`ConfigError::Invalid`].
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

/// All variables of this run, file first, environment over it.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
    source: Option<PathBuf>,
}

impl Settings {
    /// Reads `env_file` when given (it must exist), else `.env` in the current directory when
    /// there is one, then lays the process environment over it.
    pub fn load(env_file: Option<&Path>) -> Result<Settings, SettingsError> {
        let path = match env_file {
            Some(path) => Some(path.to_path_buf()),
            None => Some(PathBuf::from(".env")).filter(|path| path.is_file()),
        };
        let mut settings = match &path {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|err| SettingsError::Unreadable {
                        path: path.clone(),
                        reason: err.to_string(),
                    })?;
                let mut settings = Settings::parse_env_file(&text, path)?;
                settings.source = Some(path.clone());
                settings
            }
            None => Settings::default(),
        };
        settings.overlay(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }));
        Ok(settings)
    }

    /// Settings from the given pairs only (tests).
    #[cfg(test)]
    pub fn from_pairs<I, K, V>(pairs: I) -> Settings
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut settings = Settings::default();
        settings.overlay(
            pairs
                .into_iter()
                .map(|(name, value)| (name.into(), value.into())),
        );
        settings
    }

    /// Parses the text of a `.env`-style file (`path` is only used in error messages).
    pub fn parse_env_file(text: &str, path: &Path) -> Result<Settings, SettingsError> {
        let mut values = BTreeMap::new();
        for (index, raw_line) in text.lines().enumerate() {
            let syntax = |reason: &str| SettingsError::Syntax {
                path: path.to_path_buf(),
                line: index + 1,
                reason: reason.to_owned(),
            };
            let line = raw_line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line
                .strip_prefix("export ")
                .map(str::trim_start)
                .unwrap_or(line);
            let Some((name, rest)) = line.split_once('=') else {
                return Err(syntax("expected NAME=value"));
            };
            let name = name.trim();
            if !is_variable_name(name) {
                return Err(syntax(&format!(
                    "{name:?} is not a variable name (letters, digits and _, not starting with a digit)"
                )));
            }
            let value = parse_value(rest.trim()).map_err(|reason| syntax(&reason))?;
            values.insert(name.to_owned(), value);
        }
        Ok(Settings {
            values,
            source: None,
        })
    }

    fn overlay(&mut self, pairs: impl Iterator<Item = (String, String)>) {
        for (name, value) in pairs {
            self.values.insert(name, value);
        }
    }

    /// The file the settings came from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// A variable's value, trimmed; `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }

    /// A variable that must be set.
    pub fn require(&self, name: &str, why: &str) -> Result<&str, ConfigError> {
        self.get(name).ok_or_else(|| ConfigError::Missing {
            name: name.to_owned(),
            why: why.to_owned(),
        })
    }

    /// Every variable name that starts with `prefix`, in order.
    pub fn names_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> {
        self.values
            .range(prefix.to_owned()..)
            .map(|(name, _)| name.as_str())
            .take_while(move |name| name.starts_with(prefix))
    }

    /// A comma- or space-separated list, without empty items.
    pub fn list(&self, name: &str) -> Vec<String> {
        split_list(self.get(name).unwrap_or_default())
    }
}

/// Splits a comma- or whitespace-separated list.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The value part of a line: quoted (single: literal; double: `\n`, `\t`, `\"`, `\\`
/// escapes), or bare, where ` #` starts a comment.
fn parse_value(rest: &str) -> Result<String, String> {
    let mut chars = rest.char_indices();
    match chars.next() {
        None => Ok(String::new()),
        Some((_, quote @ ('"' | '\''))) => {
            let mut value = String::new();
            let mut escaped = false;
            for (index, c) in chars {
                if escaped {
                    value.push(match c {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        other => other,
                    });
                    escaped = false;
                } else if c == '\\' && quote == '"' {
                    escaped = true;
                } else if c == quote {
                    let after = rest[index + 1..].trim_start();
                    if after.is_empty() || after.starts_with('#') {
                        return Ok(value);
                    }
                    return Err(format!(
                        "unexpected text after the closing quote: {after:?}"
                    ));
                } else {
                    value.push(c);
                }
            }
            Err(format!("missing closing {quote} (values span one line)"))
        }
        Some(_) => {
            let value = match rest.find(" #").or_else(|| rest.find("\t#")) {
                Some(comment) => &rest[..comment],
                None => rest,
            };
            Ok(value.trim().to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, SettingsError> {
        Settings::parse_env_file(text, Path::new(".env"))
    }

    #[test]
    fn env_file_lines_quotes_comments_and_export() {
        let settings = parse(
            "# ingress\n\
             INGRESS_OAUTH_CLIENT_ID=abc123\n\
             export AWS_REGION = us-west-2\n\
             INGRESS_OAUTH_CLIENT_SECRET=\"s3cr#t with \\\"quotes\\\"\" # trailing\n\
             SINGLE='$NOT_EXPANDED \\n'\n\
             BARE=value # comment\n\
             HASH_INSIDE=a#b\n\
             EMPTY=\n\
             \n",
        )
        .expect("parses");
        assert_eq!(settings.get("INGRESS_OAUTH_CLIENT_ID"), Some("abc123"));
        assert_eq!(settings.get("AWS_REGION"), Some("us-west-2"));
        assert_eq!(
            settings.get("INGRESS_OAUTH_CLIENT_SECRET"),
            Some("s3cr#t with \"quotes\"")
        );
        assert_eq!(settings.get("SINGLE"), Some("$NOT_EXPANDED \\n"));
        assert_eq!(settings.get("BARE"), Some("value"));
        assert_eq!(settings.get("HASH_INSIDE"), Some("a#b"));
        assert_eq!(
            settings.get("EMPTY"),
            None,
            "an empty value counts as unset"
        );
    }

    #[test]
    fn env_file_errors_name_the_line() {
        let error = parse("A=1\nthis is not a setting\n")
            .expect_err("refused")
            .to_string();
        assert_eq!(error, ".env:2: expected NAME=value");
        let error = parse("1ABC=x").expect_err("refused").to_string();
        assert!(
            error.starts_with(".env:1: \"1ABC\" is not a variable name"),
            "{error}"
        );
        let error = parse("A=\"open").expect_err("refused").to_string();
        assert!(error.contains("missing closing \""), "{error}");
        let error = parse("A=\"x\" y").expect_err("refused").to_string();
        assert!(error.contains("after the closing quote"), "{error}");
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let mut settings = parse("A=file\nB=file\n").expect("parses");
        settings.overlay([("B".to_owned(), "env".to_owned())].into_iter());
        assert_eq!(settings.get("A"), Some("file"));
        assert_eq!(settings.get("B"), Some("env"));
    }

    #[test]
    fn require_names_the_missing_variable() {
        let settings = Settings::default();
        let error = settings
            .require("INGRESS_OAUTH_CLIENT_ID", "the app client of the gateway")
            .expect_err("missing");
        assert_eq!(
            error.to_string(),
            "INGRESS_OAUTH_CLIENT_ID is not set (the app client of the gateway)"
        );
    }

    #[test]
    fn prefix_scan_and_lists() {
        let settings = Settings::from_pairs([
            ("EGRESS_OAUTH_CLIENT_ID_2", "b"),
            ("EGRESS_OAUTH_CLIENT_ID_1", "a"),
            ("EGRESS_OAUTH_CLIENT_SECRET_1", "s"),
            ("LIST", "one, two  three,,"),
        ]);
        let names: Vec<_> = settings
            .names_with_prefix("EGRESS_OAUTH_CLIENT_ID_")
            .collect();
        assert_eq!(
            names,
            ["EGRESS_OAUTH_CLIENT_ID_1", "EGRESS_OAUTH_CLIENT_ID_2"]
        );
        assert_eq!(settings.list("LIST"), ["one", "two", "three"]);
    }
}
