//! Tidy tests: facts about the workspace that `docs/ARCHITECTURE.md` states
//! and a test can check (rust-analyzer's `xtask/src/tidy.rs` is the model).
//! They run with every `cargo test --workspace`, so `cargo xtask ci` runs
//! them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Crates `jit-domain` must never depend on: it does no I/O and runs on no
/// runtime (ARCHITECTURE.md, "Architecture invariant").
const NOT_IN_THE_DOMAIN: &[&str] = &[
    "tokio",
    "sea-orm",
    "sea-orm-migration",
    "sqlx",
    "reqwest",
    "axum",
    "axum-extra",
    "hyper",
    "hyper-util",
    "tower",
    "tower-http",
    "openidconnect",
    "lettre",
    "rquickjs",
    "jsonwebtoken",
    "aws-lc-rs",
];

/// `cargo metadata` of the workspace, without dependencies' own metadata.
fn metadata() -> Value {
    let root = crate::workspace_root().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&root)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Each workspace package and the names of its normal and build
/// dependencies.
fn dependencies(metadata: &Value) -> BTreeMap<String, BTreeSet<String>> {
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let names = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect();
            (package["name"].as_str().unwrap().to_owned(), names)
        })
        .collect()
}

/// The dependency map of `docs/ARCHITECTURE.md`: the table after the
/// `<!-- tidy: dependency map -->` marker.
fn documented_map() -> BTreeMap<String, BTreeSet<String>> {
    let path = crate::workspace_root().unwrap().join("docs/ARCHITECTURE.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let (_, table) = text.split_once("<!-- tidy: dependency map -->").expect("ARCHITECTURE.md has the dependency map");
    table
        .lines()
        .map(str::trim)
        .skip_while(|line| line.is_empty())
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .map(|row| {
            let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
            let name = cells[0].trim_matches('`').to_owned();
            let deps = cells[1].split(',').map(|d| d.trim().trim_matches('`')).filter(|d| !d.is_empty() && *d != "—");
            (name, deps.map(str::to_owned).collect())
        })
        .collect()
}

fn is_ours(name: &str) -> bool {
    name == "jit" || name.starts_with("jit-") || name == "xtask"
}

#[test]
fn crates_depend_on_each_other_as_the_map_says() {
    let actual: BTreeMap<String, BTreeSet<String>> = dependencies(&metadata())
        .into_iter()
        .map(|(name, deps)| (name, deps.into_iter().filter(|d| is_ours(d)).collect()))
        .collect();
    assert_eq!(
        actual,
        documented_map(),
        "cargo metadata (left) and docs/ARCHITECTURE.md's dependency map (right) differ"
    );
}

#[test]
fn the_domain_depends_on_no_runtime_database_or_http_crate() {
    let all = dependencies(&metadata());
    let domain = &all["jit-domain"];
    let found: Vec<&String> = domain.iter().filter(|d| NOT_IN_THE_DOMAIN.contains(&d.as_str())).collect();
    assert!(found.is_empty(), "jit-domain depends on {found:?}");
}

#[test]
fn every_workspace_dependency_is_used() {
    let root = crate::workspace_root().unwrap();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let (_, section) = manifest.split_once("[workspace.dependencies]").unwrap();
    let declared: Vec<&str> = section
        .lines()
        .take_while(|line| !line.starts_with('['))
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.trim()))
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .collect();
    let metadata = metadata();
    let used: BTreeSet<&str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["dependencies"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()))
        .collect();
    let unused: Vec<&&str> = declared.iter().filter(|name| !used.contains(**name)).collect();
    assert!(unused.is_empty(), "declared in [workspace.dependencies] but used by no crate: {unused:?}");
}

/// HTTP servers and databases: only `jit-server` speaks HTTP to browsers
/// and applications, only `jit-store` speaks SQL.
const HTTP_SERVER_OR_DATABASE: &[&str] =
    &["axum", "axum-extra", "hyper", "hyper-util", "tower", "tower-http", "sea-orm", "sea-orm-migration", "sqlx"];

#[test]
fn the_layers_below_http_know_no_http_server_or_database() {
    let all = dependencies(&metadata());
    for krate in ["jit-domain", "jit-primitives", "jit-script", "jit-idp", "jit-provider", "jit-flow"] {
        let found: Vec<&String> = all[krate].iter().filter(|d| HTTP_SERVER_OR_DATABASE.contains(&d.as_str())).collect();
        assert!(found.is_empty(), "{krate} depends on {found:?}");
    }
}

#[test]
fn every_crate_has_its_section_in_the_map() {
    let root = crate::workspace_root().unwrap();
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let missing: Vec<String> = dependencies(&metadata())
        .into_keys()
        .filter(|name| name != "xtask")
        .filter(|name| !doc.contains(&format!("### `crates/{name}`")))
        .collect();
    assert!(missing.is_empty(), "docs/ARCHITECTURE.md has no section for {missing:?}");
}

#[test]
fn console_forms_are_read_only_through_the_csrf_check() {
    // Every console handler that reads a form takes `AdminForm`, which
    // refuses it without the session's CSRF token; only the setup page
    // (no session yet, its one-time token is the proof) reads a plain form.
    let dir = crate::workspace_root().unwrap().join("crates/jit-server/src/console");
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&path).unwrap();
        let plain_forms = source.matches("Form(").count() + source.matches("Form<").count()
            - source.matches("AdminForm(").count()
            - source.matches("AdminForm<").count();
        if plain_forms > 0 && name != "setup.rs" {
            offenders.push(name);
        }
    }
    assert!(offenders.is_empty(), "console modules reading a form without AdminForm: {offenders:?}");
}
