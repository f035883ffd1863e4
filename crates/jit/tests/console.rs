//! The admin console in a real browser: headless Chromium (Debian's
//! `chromium` and `chromium-driver`) driven over WebDriver, against `jit
//! serve`, the external IdP (node `oidc-provider`) and an application
//! (`openid-client`) on loopback. The tests walk the seeds' instructions
//! literally and write a screenshot of every page they visit under
//! `<target>/tmp/console-screenshots/`.
//!
//! Without chromedriver the browser tests say so and pass, unless
//! `JIT_REQUIRE_BROWSER` is set (CI sets it): then they fail.
//! `JIT_CHROMIUM` and `JIT_CHROMEDRIVER` name other binaries than Debian's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use support::*;

/// Debian's chromedriver, unless `JIT_CHROMEDRIVER` names another.
fn chromedriver() -> PathBuf {
    std::env::var_os("JIT_CHROMEDRIVER").map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from)
}

/// Debian's Chromium, unless `JIT_CHROMIUM` names another Chrome.
fn chromium() -> PathBuf {
    std::env::var_os("JIT_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}
const ADMIN_PASSWORD: &str = "console-admin-password";

/// Whether the browser tests can run here; panics when they must and cannot.
fn browser_available() -> bool {
    let (driver, browser) = (chromedriver(), chromium());
    let present = driver.exists() && browser.exists();
    if !present {
        let missing = format!("{} or {} is missing", driver.display(), browser.display());
        assert!(
            std::env::var_os("JIT_REQUIRE_BROWSER").is_none(),
            "JIT_REQUIRE_BROWSER is set but {missing} (apt-get install chromium chromium-driver)"
        );
        eprintln!("SKIPPED: {missing}; install chromium and chromium-driver to run the console's browser tests");
    }
    present
}

/// chromedriver and a headless Chromium session, both gone when dropped.
struct Chrome {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Chrome {
    async fn start() -> Self {
        let port = free_port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = None;
        for _ in 0..50 {
            match ClientBuilder::rustls().expect("TLS roots").capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => {
                    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
                    std::fs::create_dir_all(&shots).unwrap();
                    return Self { client, driver, _profile: profile, shots };
                }
                Err(error) => last_error = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("chromedriver did not start a session: {last_error:?}")
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Clicks what `locator` finds and waits for the next page to load.
    async fn navigate_by(&self, locator: Locator<'_>, what: &str) {
        let before = self.client.find(Locator::Css("html")).await.unwrap().element_id();
        self.client.find(locator).await.unwrap_or_else(|e| panic!("no {what}: {e}")).click().await.unwrap();
        for _ in 0..100 {
            if let Ok(now) = self.client.find(Locator::Css("html")).await
                && now.element_id() != before
                && self.client.execute("return document.readyState", vec![]).await.unwrap() == json!("complete")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("clicking {what} loaded no new page");
    }

    /// Clicks a button or link that loads a page.
    async fn click(&self, css: &str) {
        self.navigate_by(Locator::Css(css), css).await;
    }

    async fn click_link(&self, text: &str) {
        self.navigate_by(Locator::LinkText(text), &format!("link {text:?}")).await;
    }

    /// A tab of the page (not the navigation's link of the same name).
    async fn click_tab(&self, label: &str) {
        let xpath = format!("//nav[@class='tabs']/a[normalize-space()='{label}']");
        self.navigate_by(Locator::XPath(&xpath), &format!("tab {label:?}")).await;
    }

    /// Clicks a control that does not load a page (a checkbox, a radio).
    async fn toggle(&self, css: &str) {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}")).click().await.unwrap();
    }

    async fn fill(&self, css: &str, value: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    async fn select(&self, css: &str, value: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        field.select_by_value(value).await.unwrap();
    }

    async fn is_checked(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.unwrap().is_selected().await.unwrap()
    }

    /// Clicks the checkbox at `css` until it is `checked`.
    async fn set_checked(&self, css: &str, checked: bool) {
        if self.is_checked(css).await != checked {
            self.toggle(css).await;
        }
        assert_eq!(self.is_checked(css).await, checked, "{css}");
    }

    async fn is_displayed(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.unwrap().is_displayed().await.unwrap()
    }

    async fn exists(&self, css: &str) -> bool {
        !self.client.find_all(Locator::Css(css)).await.unwrap().is_empty()
    }

    async fn text(&self, css: &str) -> String {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}")).text().await.unwrap()
    }

    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// A PNG of the page as `name.png`; the page must have rendered.
    async fn screenshot(&self, name: &str) {
        self.client.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    async fn close(mut self) {
        self.client.clone().close().await.unwrap();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Signs in to the console as `username` through jit's own sign-in page.
async fn console_sign_in(chrome: &Chrome, jit_url: &str, username: &str, password: &str) {
    chrome.goto(&format!("{jit_url}/console")).await;
    assert_eq!(chrome.path().await, "/console/login");
    chrome.screenshot("console-login").await;
    chrome.click("#sign-in").await;
    assert_eq!(chrome.path().await, "/signin", "the console signs in through jit's own sign-in page");
    assert!(chrome.source().await.contains("Sign in to jit console"));
    chrome.fill("#username", username).await;
    chrome.fill("#password", password).await;
    chrome.click("form[action='/signin/password'] button").await;
}

fn alice() -> Value {
    json!({"alice": {"sub": "alice-sub", "email": "Alice@Example.com", "email_verified": true,
                     "given_name": "Alice", "preferred_username": "alice"}})
}

fn jit_on() -> Value {
    json!({"enabled": true, "sync_method": "override_all", "trust_email": false,
           "linking": {"enabled": false, "rules": [], "skip_provisioning_without_match": false}})
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_instructions_work_word_for_word_in_the_console() {
    if !browser_available() {
        return;
    }
    let world = World::start(jit_on(), alice(), json!([{"options": ["LOCAL", "corp"]}])).await;
    let chrome = Chrome::start().await;

    // The first administrator, from the one-time setup link jit printed.
    let line = world.jit_output_line("/console/setup?token=").expect("jit printed a setup link");
    let link = line.split_whitespace().find(|word| word.contains("/console/setup?token=")).unwrap();
    chrome.goto(link).await;
    chrome.screenshot("console-setup").await;
    chrome.fill("#username", "root-admin").await;
    chrome.fill("#password", ADMIN_PASSWORD).await;
    chrome.fill("#confirm", ADMIN_PASSWORD).await;
    chrome.click("button[type=submit]").await;
    assert!(chrome.source().await.contains("The administrator was created"));
    chrome.goto(link).await;
    assert!(chrome.source().await.contains("Setup link not valid"), "the link works once");

    // "click Connections and select the relevant connection".
    console_sign_in(&chrome, &world.jit_url, "root-admin", ADMIN_PASSWORD).await;
    assert_eq!(chrome.path().await, "/console/connections");
    chrome.screenshot("console-connections").await;
    chrome.click_link("corp IdP").await;
    chrome.screenshot("console-connection-general").await;
    for (tab, shot) in [
        ("Settings", "settings"),
        ("Attributes", "attributes"),
        ("Groups & roles", "groups-and-roles"),
        ("Test", "test"),
    ] {
        chrome.click_tab(tab).await;
        chrome.screenshot(&format!("console-connection-{shot}")).await;
    }
    // "Go to the Just-in-Time Provisioning tab … Uncheck the Just-in-Time
    // (JIT) User Provisioning checkbox … Click Update".
    chrome.click_tab("Just-in-Time Provisioning").await;
    assert!(chrome.source().await.contains("Just-in-Time (JIT) User Provisioning"));
    chrome.screenshot("console-connection-jit").await;
    assert!(!chrome.is_displayed("#jit-disabled-warning").await, "no warning while JIT is on");
    chrome.set_checked("#jit-enabled", false).await;
    assert!(chrome.is_displayed("#jit-disabled-warning").await, "unchecking shows the MFA warning at once");
    chrome.click("#update").await;
    assert!(chrome.source().await.contains("Saved."));
    assert!(chrome.is_displayed("#jit-disabled-warning").await, "while unchecked, the MFA warning shows");
    chrome.screenshot("console-connection-jit-disabled").await;
    assert_eq!(world.admin.get("/connections/corp/jit").await["enabled"], false);

    // A real sign-in through the application: attributes pass through, no account.
    let claims = World::app_claims(&world.federated_login("alice").await);
    assert_eq!(claims["id_token_claims"]["email"], "Alice@Example.com");
    assert!(world.users_with_email("alice@example.com").await.is_empty(), "JIT off creates no account");

    // Check it again, Preserve Local, linking with a first and a fallback rule.
    let local = world.admin.post("/users", json!({"username": "alice", "attributes": {"family_name": "Local"}})).await;
    chrome.click_tab("Just-in-Time Provisioning").await;
    chrome.set_checked("#jit-enabled", true).await;
    chrome.toggle("#sync-preserve").await;
    chrome.set_checked("#linking-enabled", true).await;
    chrome.fill("input[name=rule_federated]", "email").await;
    chrome.select("select[name=rule_local]", "email").await;
    chrome.click("#add-or-rule").await;
    let rows = chrome.client.find_all(Locator::Css("input[name=rule_federated]")).await.unwrap();
    assert_eq!(rows.len(), 2, "OR adds the fallback rule");
    rows[1].send_keys("preferred_username").await.unwrap();
    let locals = chrome.client.find_all(Locator::Css("select[name=rule_local]")).await.unwrap();
    locals[1].select_by_value("username").await.unwrap();
    let trusted = chrome.client.find_all(Locator::Css("input[name=rule_trusted]")).await.unwrap();
    trusted[1].click().await.unwrap();
    assert!(chrome.is_checked("#sync-preserve").await);
    chrome.screenshot("console-connection-jit-rules").await;
    chrome.click("#update").await;
    assert!(chrome.source().await.contains("Saved."), "{}", chrome.source().await);
    let jit = world.admin.get("/connections/corp/jit").await;
    assert_eq!(jit["enabled"], true);
    assert_eq!(jit["sync_method"], "preserve_local");
    assert_eq!(
        jit["linking"]["rules"][1],
        json!({"federated": "preferred_username", "local": "username", "trusted": true})
    );

    // The next sign-in links by the fallback rule and syncs as set.
    let mut world = world;
    world.new_browser();
    let claims = World::app_claims(&world.federated_login("alice").await);
    assert_eq!(claims["id_token_claims"]["sub"], local["id"], "linked to the local account");
    let user = world.admin.get(&format!("/users/{}", local["id"].as_str().unwrap())).await;
    assert_eq!(user["attributes"]["family_name"], "Local", "Preserve Local keeps what the IdP does not send");
    assert_eq!(user["attributes"]["given_name"], "Alice");
    assert_eq!(world.audit().await[0]["action"], "linked");

    // An application whose flow has TOTP after a JIT-disabled connection.
    world.admin.post("/connections", connection("partner", &world.idp_url, json!({"enabled": false}))).await;
    let app = world
        .admin
        .post(
            "/applications",
            json!({"name": "payroll", "redirect_uris": ["https://payroll.example.com/cb"],
                   "sign_in": {"steps": [{"options": ["LOCAL", "partner"]}, {"options": ["TOTP"]}]}}),
        )
        .await;
    chrome.click_link("Applications").await;
    chrome.screenshot("console-applications").await;
    chrome.click_link("payroll").await;
    let warning = chrome.text("#jit-mfa-warning").await;
    assert!(
        warning.contains("Currently, Just-in-Time (JIT) user provisioning is disabled for the partner connection. To use MFA with this connection, enable JIT provisioning or use an authentication script to skip the MFA options for this connection during user login."),
        "{warning}"
    );
    chrome.screenshot("console-application-warning").await;
    chrome.click("#script-template").await;
    assert!(chrome.text("#script").await.contains("executeStep(2)"), "the template is in the editor");
    chrome.click("#save").await;
    assert!(chrome.source().await.contains("Saved."), "{}", chrome.source().await);
    assert!(!chrome.exists("#jit-mfa-warning").await, "the warning is gone");
    assert!(chrome.exists("#script-decides").await, "a note that a script decides: {}", chrome.source().await);
    assert!(chrome.text("#script-decides").await.contains("partner"));
    chrome.screenshot("console-application-scripted").await;
    let stored = world.admin.get(&format!("/applications/{}", app["client_id"].as_str().unwrap())).await;
    assert!(stored["sign_in"]["script"].as_str().unwrap().contains("onLoginRequest"));

    // A script that does not compile is refused with the engine's message.
    chrome.fill("#script", "var onLoginRequest = function (context) {").await;
    chrome.click("#save").await;
    let refused = chrome.text(".field-error").await;
    assert!(
        refused.contains("invalid sign_in.script") && refused.contains("line"),
        "the engine's message and line: {refused}"
    );

    chrome.close().await;
}

/// The first administrator, through the setup link jit printed (over HTTP).
async fn set_up_administrator(world: &World, username: &str, password: &str) {
    let line = world.jit_output_line("/console/setup?token=").expect("jit printed a setup link");
    let link = line.split_whitespace().find(|word| word.contains("/console/setup?token=")).unwrap();
    let browser = Browser::new();
    let page = browser.get(link).await;
    let token = hidden_value(&page.body, "token").unwrap();
    let done = browser
        .post_form(
            &format!("{}/console/setup", world.jit_url),
            &[("token", &token), ("username", username), ("password", password), ("confirm", password)],
        )
        .await;
    assert!(done.body.contains("The administrator was created"), "{}", done.body);
}

/// A console session over HTTP: the sign-in through jit's own pages. The
/// page it ends on.
async fn http_console_sign_in(world: &World, browser: &Browser, username: &str, password: &str) -> Page {
    let signin = browser.get(&format!("{}/console/login/start", world.jit_url)).await;
    assert!(signin.url.ends_with("/signin"), "{} {}", signin.url, signin.body);
    let csrf = hidden_value(&signin.body, "csrf").unwrap();
    browser
        .post_form(
            &format!("{}/signin/password", world.jit_url),
            &[("csrf", &csrf), ("username", username), ("password", password)],
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_is_for_administrators_only_and_its_forms_cannot_be_forged() {
    let world = World::start(jit_on(), alice(), json!([{"options": ["LOCAL", "corp"]}])).await;
    set_up_administrator(&world, "root-admin", ADMIN_PASSWORD).await;

    // A local user without the admin role signs in fine, and gets no console.
    world.admin.post("/users", json!({"username": "mallory", "password": "mallory-password"})).await;
    let outsider = Browser::new();
    let refused = http_console_sign_in(&world, &outsider, "mallory", "mallory-password").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("does not hold the admin role"));
    let again = outsider.get(&format!("{}/console/connections", world.jit_url)).await;
    assert!(again.url.ends_with("/console/login"), "no session was made: {}", again.url);

    // The administrator gets the console, with the pages' security headers.
    let browser = Browser::new();
    let page = http_console_sign_in(&world, &browser, "root-admin", ADMIN_PASSWORD).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.url.ends_with("/console/connections"), "{}", page.url);
    let response = browser.client.get(format!("{}/console/connections/corp/jit", world.jit_url)).send().await.unwrap();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap();
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in ["default-src 'none'", "script-src 'self'", "form-action 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    let csrf = hidden_value(&body, "csrf").unwrap();

    // A form without the session's token, or with another one, changes nothing.
    let jit_off = [("sync_method", "override_all"), ("action", "update")];
    for token in ["", "forged-token"] {
        let mut form = vec![("csrf", token)];
        form.extend(jit_off);
        let forged = browser.post_form(&format!("{}/console/connections/corp/jit", world.jit_url), &form).await;
        assert_eq!(forged.status, 403, "{}", forged.body);
    }
    // A cross-site post is refused even with the right token.
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend(jit_off);
    let cross_site = browser
        .client
        .post(format!("{}/console/connections/corp/jit", world.jit_url))
        .header("sec-fetch-site", "cross-site")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    assert_eq!(world.admin.get("/connections/corp/jit").await["enabled"], true, "nothing changed");
    // The session's own form goes through.
    let saved = browser.post_form(&format!("{}/console/connections/corp/jit", world.jit_url), &form).await;
    assert!(saved.body.contains("Saved."), "{}", saved.body);
    assert_eq!(world.admin.get("/connections/corp/jit").await["enabled"], false);

    // A console callback this browser did not start is refused.
    let stray = browser.get(&format!("{}/console/callback?code=x&state=y", world.jit_url)).await;
    assert_eq!(stray.status, 400, "{}", stray.body);

    // Signing out ends the session on the server.
    let session_page = browser.get(&format!("{}/console/keys", world.jit_url)).await;
    let csrf = hidden_value(&session_page.body, "csrf").unwrap();
    let out = browser.post_form(&format!("{}/console/logout", world.jit_url), &[("csrf", &csrf)]).await;
    assert!(out.url.ends_with("/console/login"), "{}", out.url);
    let after = browser.get(&format!("{}/console/keys", world.jit_url)).await;
    assert!(after.url.ends_with("/console/login"));

    // Revoking the admin role takes the console at the next click.
    let second = Browser::new();
    http_console_sign_in(&world, &second, "root-admin", ADMIN_PASSWORD).await;
    let root = world.users_with("username", "root-admin").await;
    let id = root[0]["id"].as_str().unwrap();
    let (status, _) = world.admin.call(reqwest::Method::DELETE, &format!("/roles/admin/members/{id}"), None).await;
    assert_eq!(status, 204);
    let revoked = second.get(&format!("{}/console/connections", world.jit_url)).await;
    assert_eq!(revoked.status, 403, "{}", revoked.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consoles_own_application_cannot_be_deleted_or_locked() {
    let world = World::start(jit_on(), alice(), json!([{"options": ["LOCAL", "corp"]}])).await;
    let console = world.admin.get("/applications/jit-console").await;
    assert_eq!(console["public"], true);
    let (status, body) = world.admin.call(reqwest::Method::DELETE, "/applications/jit-console", None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "protected");
    assert!(body["message"].as_str().unwrap().contains("cannot be deleted"));
    let redirect_uris = console["redirect_uris"].clone();
    for (change, why) in [
        (json!({"steps": [{"options": ["corp"]}]}), "must keep LOCAL"),
        (json!({"steps": [{"options": ["LOCAL"]}]}), ""),
    ] {
        let (status, body) = world
            .admin
            .call(
                reqwest::Method::PUT,
                "/applications/jit-console",
                Some(json!({"name": "jit console", "redirect_uris": redirect_uris, "public": true, "sign_in": change})),
            )
            .await;
        if why.is_empty() {
            assert_eq!(status, 200, "{body}");
        } else {
            assert_eq!(status, 400, "{body}");
            assert!(body["message"].as_str().unwrap().contains(why), "{body}");
        }
    }
    let (status, body) = world
        .admin
        .call(
            reqwest::Method::PUT,
            "/applications/jit-console",
            Some(json!({"name": "jit console", "redirect_uris": ["http://127.0.0.1:1/elsewhere"], "public": true})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("/console/callback"), "{body}");
    // With MFA after the password the console still signs in.
    let (status, body) = world
        .admin
        .call(
            reqwest::Method::PUT,
            "/applications/jit-console",
            Some(json!({"name": "jit console", "redirect_uris": redirect_uris, "public": true,
                        "sign_in": {"steps": [{"options": ["LOCAL", "corp"]}, {"options": ["TOTP"]}]}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_console_page_renders_and_does_what_it_says() {
    if !browser_available() {
        return;
    }
    let world = World::start(jit_on(), alice(), json!([{"options": ["LOCAL", "corp"]}])).await;
    set_up_administrator(&world, "root-admin", ADMIN_PASSWORD).await;
    let chrome = Chrome::start().await;
    console_sign_in(&chrome, &world.jit_url, "root-admin", ADMIN_PASSWORD).await;

    // New connection: discovery is checked on save, and its failure is shown at the issuer.
    chrome.click("a[href='/console/connections/new']").await;
    chrome.fill("#name", "broken").await;
    chrome.fill("#issuer", "http://127.0.0.1:9").await;
    chrome.fill("#client_id", "jit").await;
    chrome.click("main form button[type=submit]").await;
    assert!(
        chrome.text(".field-error").await.contains(".well-known/openid-configuration"),
        "{}",
        chrome.source().await
    );
    chrome.screenshot("console-connection-new-refused").await;
    chrome.fill("#name", "second").await;
    chrome.fill("#issuer", &world.idp_url).await;
    chrome.click("main form button[type=submit]").await;
    assert_eq!(chrome.path().await, "/console/connections/second");
    assert_eq!(world.admin.get("/connections/second").await["oidc"]["issuer"], world.idp_url.as_str());

    // A connection's deletion asks first.
    chrome.click_tab("General").await;
    chrome.click_link("Delete connection").await;
    chrome.screenshot("console-confirm-delete").await;
    chrome.click("#confirm").await;
    assert_eq!(chrome.path().await, "/console/connections");
    assert!(!chrome.source().await.contains("second IdP"));

    // Test: the dry run with sample claims, then a real trial sign-in.
    chrome.click_link("corp IdP").await;
    chrome.click_tab("Test").await;
    chrome.click("form[action$='/test'] button").await;
    assert_eq!(chrome.text("#decision").await, "create");
    assert!(chrome.text("table.summary").await.contains("Dropped claims"));
    chrome.screenshot("console-connection-test-result").await;
    chrome.goto(&format!("{}/console/connections/corp/try", world.jit_url)).await;
    chrome.fill("input[name=login]", "alice").await;
    chrome.click("#login button").await;
    assert_eq!(chrome.text("#decision").await, "create", "{}", chrome.source().await);
    assert!(chrome.text("#trial-id-token").await.contains("alice-sub"));
    let source = chrome.source().await;
    assert!(source.contains("<td>email</td><td>—</td><td>Alice@Example.com</td>"), "the attribute diff: {source}");
    chrome.screenshot("console-trial-sign-in").await;
    assert!(world.users_with_email("alice@example.com").await.is_empty(), "a trial provisions nothing");

    // New application: the secret is shown once, with a copy button.
    chrome.click_link("Applications").await;
    chrome.click("a[href='/console/applications/new']").await;
    chrome.screenshot("console-application-new").await;
    chrome.fill("#name", "crm").await;
    chrome.fill("#redirect_uris", "https://crm.example.com/callback").await;
    chrome.click("main form button[type=submit]").await;
    assert!(chrome.text("#client-secret").await.len() >= 40);
    assert!(chrome.exists("button[data-copy=client-secret]").await);
    chrome.screenshot("console-application-created").await;
    // Its sign-in method: add a step with TOTP, then move it first (refused, with the reason).
    chrome.click_link("Set up its sign-in method").await;
    chrome.click("button[value=add_step]").await;
    chrome.toggle("input[name=step_1][value=TOTP]").await;
    chrome.click("#save").await;
    assert!(chrome.source().await.contains("Saved."));
    chrome.click("button[value=up_1]").await;
    chrome.click("#save").await;
    assert!(
        chrome.text(".field-error").await.contains("needs a user identified by an earlier step"),
        "{}",
        chrome.source().await
    );
    chrome.screenshot("console-application-refused").await;

    // Users: search by any attribute; a user's page with provenance and identities.
    World::app_claims(&world.federated_login("alice").await);
    chrome.click_link("Users").await;
    chrome.select("select[name=attribute]", "email").await;
    chrome.fill("#search-value", "ALICE@example.com").await;
    chrome.click("#search").await;
    chrome.screenshot("console-users").await;
    chrome.click_link("alice").await;
    let page = chrome.source().await;
    assert!(page.contains("connection:corp") && page.contains("alice-sub"), "{page}");
    chrome.screenshot("console-user").await;

    // Attributes, groups, roles.
    chrome.click_link("Attributes").await;
    chrome.fill("#name", "employee_id").await;
    chrome.toggle("#unique").await;
    chrome.click("form[action='/console/attributes'] button").await;
    assert!(chrome.source().await.contains("<code>employee_id</code>"));
    chrome.screenshot("console-attributes").await;
    chrome.click_link("employee_id").await;
    chrome.fill("#description", "The HR system's id").await;
    chrome.click("#update").await;
    assert_eq!(world.admin.get("/attributes/employee_id").await["description"], "The HR system's id");
    assert_eq!(world.admin.get("/attributes/employee_id").await["unique"], true, "the form kept what it showed");
    chrome.click_link("Groups").await;
    chrome.fill("#name", "engineering").await;
    chrome.click("form[action='/console/groups'] button").await;
    assert!(chrome.source().await.contains("engineering"));
    chrome.fill("input[aria-label='Description of engineering']", "Builds things").await;
    chrome.click("form[action='/console/groups/engineering/describe'] button").await;
    assert_eq!(world.admin.get("/groups/engineering").await["description"], "Builds things");
    chrome.screenshot("console-groups").await;
    chrome.click_link("Roles").await;
    assert!(chrome.source().await.contains("Administrators of jit"));
    chrome.screenshot("console-roles").await;

    // Audit, filtered by action.
    chrome.click_link("Audit").await;
    chrome.select("select[name=action]", "created").await;
    chrome.click("form[action='/console/audit'] button").await;
    assert!(chrome.source().await.contains("alice-sub"));
    chrome.screenshot("console-audit").await;

    // Keys: rotation retires the signing key and keeps it published.
    chrome.click_link("Keys").await;
    chrome.click("#rotate").await;
    assert!(chrome.source().await.contains("retired"));
    assert_eq!(
        reqwest::get(format!("{}/oauth2/jwks", world.jit_url)).await.unwrap().json::<Value>().await.unwrap()["keys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    chrome.screenshot("console-keys").await;

    // A phone-sized window.
    chrome.client.set_window_size(390, 844).await.unwrap();
    chrome.click_link("Connections").await;
    chrome.screenshot("console-connections-phone").await;

    // Signed out, then signed in as someone without the admin role.
    chrome.client.set_window_size(1280, 1000).await.unwrap();
    chrome.click("header form button").await;
    assert_eq!(chrome.path().await, "/console/login");
    world.admin.post("/users", json!({"username": "mallory", "password": "mallory-password"})).await;
    console_sign_in(&chrome, &world.jit_url, "mallory", "mallory-password").await;
    assert!(chrome.source().await.contains("does not hold the admin role"));
    chrome.screenshot("console-not-an-administrator").await;
    chrome.close().await;
}

/// The secret of the TOTP enrolment page `body` shows.
fn enrolment_secret(body: &str) -> jit_domain::mfa::TotpSecret {
    let start = body.find("otpauth://totp/").unwrap_or_else(|| panic!("no enrolment on the page: {body}"));
    let uri = body[start..start + body[start..].find('<').unwrap()].replace("&#38;", "&").replace("&amp;", "&");
    let url = reqwest::Url::parse(&uri).unwrap();
    let secret = url.query_pairs().find(|(k, _)| k == "secret").map(|(_, v)| v.into_owned()).unwrap();
    jit_domain::mfa::TotpSecret::new(secret).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn federated_administrators_and_the_consoles_own_mfa() {
    let users = json!({"alice": {"sub": "alice-sub", "email": "alice@example.com", "email_verified": true,
                                 "preferred_username": "alice", "roles": ["jit-admins"]},
                       "bob": {"sub": "bob-sub", "email": "bob@example.com", "email_verified": true,
                               "preferred_username": "bob", "roles": ["staff"]}});
    let world = World::start(jit_on(), users, json!([{"options": ["LOCAL", "corp"]}])).await;
    set_up_administrator(&world, "root-admin", ADMIN_PASSWORD).await;
    // The IdP's "jit-admins" become jit's administrators.
    let mut corp = world.admin.get("/connections/corp").await;
    corp["roles"] = json!({"claim": "roles", "mappings": {"jit-admins": "admin"}});
    corp["oidc"]["client_secret"] = Value::Null;
    world.admin.put("/connections/corp", corp).await;
    // The console's flow: the password or corp, then TOTP.
    let console = world.admin.get("/applications/jit-console").await;
    world
        .admin
        .put(
            "/applications/jit-console",
            json!({"name": "jit console", "redirect_uris": console["redirect_uris"], "public": true,
                   "sign_in": {"steps": [{"options": ["LOCAL", "corp"]}, {"options": ["TOTP"]}]}}),
        )
        .await;

    for (login, admits) in [("alice", true), ("bob", false)] {
        let browser = Browser::new();
        let signin = browser.get(&format!("{}/console/login/start", world.jit_url)).await;
        let csrf = hidden_value(&signin.body, "csrf").unwrap();
        let idp = browser
            .post_form(&format!("{}/signin/federated", world.jit_url), &[("csrf", &csrf), ("connection", "corp")])
            .await;
        let enrol = browser.idp_login(&idp, login).await;
        assert!(enrol.url.ends_with("/signin"), "{login}: step 2 asks for TOTP: {} {}", enrol.url, enrol.body);
        let secret = enrolment_secret(&enrol.body);
        let code = jit_flow::factors::totp::code_at(&secret, time::OffsetDateTime::now_utc()).unwrap();
        let csrf = hidden_value(&enrol.body, "csrf").unwrap();
        let done =
            browser.post_form(&format!("{}/signin/totp", world.jit_url), &[("csrf", &csrf), ("code", &code)]).await;
        if admits {
            assert_eq!(done.status, 200, "{login}: {}", done.body);
            assert!(done.url.ends_with("/console/connections"), "{login}: {}", done.url);
        } else {
            assert_eq!(done.status, 403, "{login}: {}", done.body);
            assert!(done.body.contains("does not hold the admin role"));
        }
    }
}
