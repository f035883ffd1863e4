//! The command line: `jit admin create-user` makes the first administrator
//! (issue 10's bootstrap), the password read from standard input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;
use support::*;

/// Runs `jit admin create-user` on `database_url`, `stdin` as its input.
fn create_user(database_url: &str, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(jit_binary())
        .args(["admin", "create-user"])
        .args(args)
        .env("JIT_DATABASE_URL", database_url)
        // The key `jit serve` gets from the harness, so both open the same secrets.
        .env("JIT_SECRET_KEY", SECRET_KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_administrator_is_created_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("jit.sqlite").display());

    let created = create_user(&url, &["--username", "root", "--password-stdin"], "a long enough password\n");
    let stdout = String::from_utf8_lossy(&created.stdout);
    assert!(created.status.success(), "{stdout} {}", String::from_utf8_lossy(&created.stderr));
    assert!(stdout.contains("created user root") && stdout.contains("admin role"), "{stdout}");
    assert!(!stdout.contains("a long enough password"), "the password is echoed");

    let again = create_user(&url, &["--username", "root", "--password-stdin"], "another password\n");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let no_stdin = create_user(&url, &["--username", "other"], "");
    assert!(!no_stdin.status.success(), "a password only from standard input");
    let empty = create_user(&url, &["--username", "other", "--password-stdin"], "\n");
    assert!(!empty.status.success(), "an empty password is refused");

    // The server sees the administrator, holding the admin role.
    let port = free_port();
    let _jit = start_jit(jit_binary(), port, &url);
    let admin = Admin::new(&format!("http://127.0.0.1:{port}"));
    let found = admin.get("/users?attribute=username&value=root").await;
    assert_eq!(found[0]["roles"], json!([{"name": "admin", "granted_by": "admin"}]), "{found}");
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
}
