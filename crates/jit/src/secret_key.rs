//! Where the secret key comes from: `--secret-key` / `JIT_SECRET_KEY` (one
//! or more base64url keys, comma-separated, the sealing one first), or a key
//! file (`--secret-key-file` / `JIT_SECRET_KEY_FILE`; by default beside the
//! SQLite database, `<database>.key`, or `jit.key` in the working directory
//! for a database server). A missing default key file is generated, mode
//! 0600, and its path printed: back it up with the database.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use jit_store::SealingKeys;

use crate::config::SecretArgs;

/// The keys, and a line for the log saying where they came from.
pub fn load(args: &SecretArgs, database_url: &str) -> anyhow::Result<(SealingKeys, String)> {
    if let Some(keys) = args.secret_key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        let list: Vec<&str> = keys.split(',').collect();
        let keys = SealingKeys::from_encoded(&list).context("reading JIT_SECRET_KEY (--secret-key)")?;
        return Ok((keys, "the secret key from JIT_SECRET_KEY".into()));
    }
    let path = args.secret_key_file.clone().unwrap_or_else(|| default_path(database_url));
    if path.exists() {
        check_private(&path)?;
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("reading the key file {}", path.display()))?;
        let keys =
            SealingKeys::from_file_text(&text).with_context(|| format!("reading the key file {}", path.display()))?;
        return Ok((keys, format!("the secret key in {}", path.display())));
    }
    if args.secret_key_file.is_some() {
        bail!(
            "the key file {} does not exist; create it with `jit generate-secret-key > FILE` (mode 0600)",
            path.display()
        );
    }
    let key = SealingKeys::generate_encoded().context("generating a secret key")?;
    let text = format!("# jit secret key: seals secrets in the database. Back it up with the database.\n{key}\n");
    if !write_private(&path, &text)? {
        // Another instance on the same database generated it first.
        return load(args, database_url);
    }
    println!(
        "Generated a secret key in {} (mode 0600): back it up with the database; without it the database's secrets cannot be read.",
        path.display()
    );
    let keys = SealingKeys::from_encoded(&[key])?;
    Ok((keys, format!("the secret key generated in {}", path.display())))
}

/// `<database file>.key` for SQLite, `jit.key` otherwise.
fn default_path(database_url: &str) -> PathBuf {
    let sqlite = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:"));
    match sqlite.map(|rest| rest.split('?').next().unwrap_or_default()) {
        Some(file) if !file.is_empty() && file != ":memory:" => PathBuf::from(format!("{file}.key")),
        _ => PathBuf::from("jit.key"),
    }
}

/// Writes `text` to a new file at `path`, mode 0600, atomically: written
/// whole under a temporary name, then linked into place. False if `path`
/// appeared meanwhile (it is left as it is).
fn write_private(path: &Path, text: &str) -> anyhow::Result<bool> {
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("creating the key file {}", path.display())),
    }
}

/// Refuses a key file that others than its owner can read.
fn check_private(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "the key file {} is readable by others (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn default_paths() {
        assert_eq!(default_path("sqlite://jit.sqlite?mode=rwc"), PathBuf::from("jit.sqlite.key"));
        assert_eq!(default_path("sqlite:///var/lib/jit/db?mode=rwc"), PathBuf::from("/var/lib/jit/db.key"));
        assert_eq!(default_path("postgres://u@h/db"), PathBuf::from("jit.key"));
    }

    #[test]
    fn a_missing_default_key_file_is_generated_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("db").display());
        let args = SecretArgs { secret_key: None, secret_key_file: None };
        let (first, _) = load(&args, &url).unwrap();
        let (again, source) = load(&args, &url).unwrap();
        assert_eq!(first.current_id(), again.current_id());
        assert!(source.contains("db.key"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join("db.key");
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(load(&args, &url).unwrap_err().to_string().contains("readable by others"));
        }
        let given = SecretArgs {
            secret_key: Some(format!(" {} ", SealingKeys::generate_encoded().unwrap())),
            secret_key_file: None,
        };
        assert!(load(&given, &url).unwrap().1.contains("JIT_SECRET_KEY"));
        let bad = SecretArgs { secret_key: Some("nope".into()), secret_key_file: None };
        assert!(load(&bad, &url).is_err());
        let missing = SecretArgs { secret_key: None, secret_key_file: Some(dir.path().join("absent")) };
        assert!(load(&missing, &url).unwrap_err().to_string().contains("does not exist"));
    }
}
