//! `init`: the documented templates of the settings, written where the user works. A file
//! that exists is kept as it is: `init` never overwrites.

use std::io::Write;
use std::path::Path;

use super::{Console, Failure};
use crate::cli::InitArgs;

/// The templates: the name each gets in the target directory, its text, and where it lives in
/// the repository.
pub(crate) const TEMPLATES: &[(&str, &str, &str)] = &[
    (
        ".env.example",
        include_str!("../../.env.example"),
        "credentials-provider/.env.example",
    ),
    (
        "agentcore.example.yml",
        include_str!("../../agentcore.example.yml"),
        "credentials-provider/agentcore.example.yml",
    ),
    (
        "gateway.env.example",
        include_str!("../../../.env.example"),
        ".env.example",
    ),
];

pub(super) fn run(args: &InitArgs, console: &Console) -> Result<(), Failure> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|err| Failure::runtime(format!("{}: {err}", args.dir.display())))?;
    for (name, text, _) in TEMPLATES {
        let path = args.dir.join(name);
        if write_new(&path, text)
            .map_err(|err| Failure::runtime(format!("{}: {err}", path.display())))?
        {
            console.say(format!("wrote {}", path.display()));
        } else {
            console.say(format!(
                "kept {} (it exists; init never overwrites)",
                path.display()
            ));
        }
    }
    console.say(
        "next: cp .env.example .env, fill it in (it will hold secrets: keep it private), then run credentials-provider",
    );
    Ok(())
}

/// Creates `path` with `text`; `false` when it already exists (never replaced, never followed
/// through a link planted there).
fn write_new(path: &Path, text: &str) -> std::io::Result<bool> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(text.as_bytes())?;
            Ok(true)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::cli::Cli;
    use crate::run::{Console, execute};

    #[tokio::test]
    async fn init_writes_the_templates_once_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gateway.env.example"), "mine\n").unwrap();
        let cli = Cli::try_parse_checked([
            "credentials-provider",
            "init",
            "--dir",
            dir.path().to_str().unwrap(),
        ])
        .unwrap();
        let (console, captured) = Console::capture();
        assert_eq!(execute(cli, &console).await, 0);
        let stderr = captured.stderr();
        assert!(
            stderr.contains("wrote ") && stderr.contains("kept "),
            "{stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("gateway.env.example")).unwrap(),
            "mine\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(".env.example")).unwrap(),
            TEMPLATES[0].1
        );
        // The written template is a settings file this program reads.
        crate::settings::Settings::parse_env_file(TEMPLATES[0].1, Path::new(".env.example"))
            .unwrap();
    }

    /// `NAME` when the line is a setting, active (`NAME=…`) or commented out (`# NAME=…`).
    fn setting_name(line: &str) -> Option<&str> {
        let (name, _) = line.trim().trim_start_matches('#').trim().split_once('=')?;
        (!name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .then_some(name)
    }

    #[test]
    fn every_template_variable_is_documented() {
        for (name, text, _) in TEMPLATES
            .iter()
            .filter(|(name, ..)| name.ends_with(".env.example"))
        {
            let lines: Vec<&str> = text.lines().collect();
            for (index, line) in lines.iter().enumerate() {
                let Some(variable) = setting_name(line) else {
                    continue;
                };
                // Its paragraph (the lines above it up to a blank one) has a comment that is
                // not a setting.
                let documented = lines[..index]
                    .iter()
                    .rev()
                    .take_while(|above| !above.trim().is_empty())
                    .any(|above| {
                        above.trim_start().starts_with('#') && setting_name(above).is_none()
                    });
                assert!(documented, "{name}: {variable} has no comment above it");
            }
        }
    }

    #[test]
    fn the_template_and_the_settings_table_of_the_docs_name_the_same_variables() {
        let docs = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/credentials.md"),
        )
        .unwrap();
        let table =
            &docs[docs.find("### Settings").unwrap()..docs.find("### Egress providers").unwrap()];
        let mut documented: std::collections::BTreeSet<String> = table
            .lines()
            .filter(|line| line.starts_with("| `"))
            .flat_map(|line| {
                line.split('|')
                    .nth(1)
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .map(|name| {
                let name = name.trim_matches('`');
                name.strip_suffix("_N")
                    .map_or_else(|| name.to_owned(), |stem| format!("{stem}_1"))
            })
            .filter(|name| !name.contains('<'))
            .collect();
        documented.remove("");
        let template: std::collections::BTreeSet<String> = TEMPLATES[0]
            .1
            .lines()
            .filter_map(setting_name)
            .filter(|name| {
                !name.starts_with("AGENTCORE_CLIENT_SECRET_") && *name != "EGRESS_OAUTH_TENANT_1"
            })
            .map(str::to_owned)
            .collect();
        assert_eq!(documented, template);
    }
}
