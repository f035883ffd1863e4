//! Real processes on loopback for end-to-end tests and benchmarks: `jit
//! serve`, the external IdP (`interop/idp.mjs`, oidc-provider) and the
//! application (`interop/app.mjs`, openid-client), driven by a scripted
//! browser (an HTTP client with a cookie jar that follows redirects one hop at
//! a time and submits forms) and an admin API client.
//!
//! Test support: failures panic with a message, which is how a test fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// The admin token every harnessed `jit serve` gets.
pub const ADMIN_TOKEN: &str = "e2e-admin-token-of-at-least-32-characters";
/// The secret key every `jit serve` of the tests gets (instances sharing a
/// database must share it).
pub const SECRET_KEY: &str = "dGVzdC1vbmx5LXNlY3JldC1rZXktMzItYnl0ZXMhISE";

/// A child process, killed when dropped.
pub struct Proc {
    child: Child,
    name: String,
    output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Spawns `command` and waits for a stdout line starting with `ready`.
    fn spawn(name: &str, mut command: Command, ready: &str) -> Self {
        command.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let ready = ready.to_owned();
        let label = name.to_owned();
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = output.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line.clone());
                if !sent && line.starts_with(&ready) {
                    let _ = tx.send(line.clone());
                    sent = true;
                }
                eprintln!("[{label}] {line}");
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(_) => Self { child, name: name.to_owned(), output },
            Err(_) => {
                let _ = child.kill();
                panic!("{name} did not get ready within 30 s")
            }
        }
    }

    /// Stops the process now.
    pub fn stop(self) {}

    /// The name it was started under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The first line it printed on standard output that contains `needle`.
    pub fn output_line(&self, needle: &str) -> Option<String> {
        self.output.lock().unwrap().iter().find(|line| line.contains(needle)).cloned()
    }

    /// The operating system's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

/// A loopback port nobody listens on, for a process that will bind it
/// soon. It is taken below the kernel's ephemeral range (32768 and up on
/// Linux), so that the outgoing connections of the tests running meanwhile
/// (each takes an ephemeral local port) cannot take it first, and from a
/// process-wide sequence, so that two tests of one binary never get the
/// same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..SPAN {
        let offset = seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let port = u16::try_from(FIRST + offset).unwrap();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + SPAN)
}

/// The workspace's `interop/` folder (run `npm ci` there first).
pub fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// A user at the external IdP: login name and claims.
pub fn idp_users(users: Value) -> String {
    users.to_string()
}

/// The external IdP (oidc-provider), with one client: jit's connection
/// `connection`, calling back to `jit_url`.
pub fn start_idp(port: u16, jit_url: &str, connection: &str, users: &Value) -> Proc {
    let clients = json!([{
        "client_id": "jit",
        "client_secret": "jit-secret-at-idp",
        "redirect_uris": [format!("{jit_url}/federation/{connection}/callback")],
        "token_endpoint_auth_method": "client_secret_basic",
    }]);
    let mut command = Command::new("node");
    command
        .arg(interop_dir().join("idp.mjs"))
        .env("IDP_PORT", port.to_string())
        .env("IDP_CLIENTS", clients.to_string())
        .env("IDP_USERS", users.to_string())
        .env("IDP_TEST_CONTROL", "1");
    Proc::spawn("idp", command, "READY")
}

/// The application (openid-client) registered at jit.
pub fn start_app(port: u16, jit_url: &str, client_id: &str, client_secret: Option<&str>) -> Proc {
    let mut command = Command::new("node");
    command
        .arg(interop_dir().join("app.mjs"))
        .env("APP_PORT", port.to_string())
        .env("APP_ISSUER", jit_url)
        .env("APP_CLIENT_ID", client_id);
    if let Some(secret) = client_secret {
        command.env("APP_CLIENT_SECRET", secret);
    }
    Proc::spawn("app", command, "READY")
}

/// `jit serve` (the binary at `jit`) on `port` with `database_url`, public
/// at its own address.
pub fn start_jit(jit: &Path, port: u16, database_url: &str) -> Proc {
    start_jit_public_at(jit, port, database_url, &format!("http://127.0.0.1:{port}"))
}

/// `jit serve` on `port` whose public URL is `public_url` (for instance
/// another instance's address, as behind a load balancer).
pub fn start_jit_public_at(jit: &Path, port: u16, database_url: &str, public_url: &str) -> Proc {
    start_jit_with_env(jit, port, database_url, public_url, &[])
}

/// `jit serve` like [`start_jit_public_at`], with extra environment
/// variables (for instance `JIT_IDP_TIMEOUT`).
pub fn start_jit_with_env(jit: &Path, port: u16, database_url: &str, public_url: &str, env: &[(&str, &str)]) -> Proc {
    let mut command = Command::new(jit);
    command
        .arg("serve")
        .env("JIT_LISTEN", format!("127.0.0.1:{port}"))
        .env("JIT_PUBLIC_URL", public_url)
        .env("JIT_DATABASE_URL", database_url)
        .env("JIT_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("JIT_SECRET_KEY", SECRET_KEY)
        .env("RUST_LOG", "info,sqlx=warn,tower_http=warn");
    command.envs(env.iter().copied());
    Proc::spawn(&format!("jit:{port}"), command, "jit is listening")
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// A scripted browser: keeps cookies, follows redirects one hop at a time.
pub struct Browser {
    /// The HTTP client (cookie jar, no automatic redirects).
    pub client: reqwest::Client,
}

/// Where a walk through redirects stopped.
#[derive(Clone, Debug)]
pub struct Page {
    /// The last URL requested.
    pub url: String,
    /// Its status code.
    pub status: u16,
    /// Its body.
    pub body: String,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A browser with an empty cookie jar.
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self { client }
    }

    /// GETs `url` and follows redirects until a non-redirect answer.
    pub async fn get(&self, url: &str) -> Page {
        let response = self.client.get(url).send().await.unwrap();
        self.follow(url, response).await
    }

    /// POSTs a form and follows redirects.
    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Page {
        let response = self.client.post(url).form(form).send().await.unwrap();
        self.follow(url, response).await
    }

    async fn follow(&self, url: &str, mut response: reqwest::Response) -> Page {
        let mut url = url.to_owned();
        for _ in 0..20 {
            if !response.status().is_redirection() {
                let status = response.status().as_u16();
                return Page { url, status, body: response.text().await.unwrap() };
            }
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            url = reqwest::Url::parse(&url).unwrap().join(&location).unwrap().to_string();
            response = self.client.get(&url).send().await.unwrap();
        }
        panic!("too many redirects, last at {url}")
    }

    /// Signs in at the IdP's login page `page` as `login`.
    pub async fn idp_login(&self, page: &Page, login: &str) -> Page {
        assert_eq!(page.status, 200, "expected the IdP's login page at {}: {}", page.url, page.body);
        let action = form_action(&page.body, "/login").unwrap_or_else(|| panic!("no login form in {}", page.body));
        let action = reqwest::Url::parse(&page.url).unwrap().join(&action).unwrap().to_string();
        self.post_form(&action, &[("login", login), ("password", "irrelevant")]).await
    }
}

/// The `action` of the first form whose action ends with `suffix`.
pub fn form_action(html: &str, suffix: &str) -> Option<String> {
    html.match_indices("action=\"").find_map(|(i, _)| {
        let rest = &html[i + 8..];
        let action = &rest[..rest.find('"')?];
        action.ends_with(suffix).then(|| action.replace("&amp;", "&"))
    })
}

/// The value of a hidden input named `name`.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..start + html[start..].find('"')?].to_owned())
}

/// The admin API.
pub struct Admin {
    /// `<jit>/api/v1`.
    pub base: String,
    client: reqwest::Client,
}

impl Admin {
    /// The admin API of the jit at `jit_url`, with [`ADMIN_TOKEN`].
    pub fn new(jit_url: &str) -> Self {
        Self { base: format!("{jit_url}/api/v1"), client: reqwest::Client::new() }
    }

    /// Any call; the body as JSON when it parses, else as a string.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// POST, asserting success.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, value) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {value}");
        value
    }

    /// PUT, asserting success.
    pub async fn put(&self, path: &str, body: Value) -> Value {
        let (status, value) = self.call(reqwest::Method::PUT, path, Some(body)).await;
        assert!((200..300).contains(&status), "PUT {path}: {status} {value}");
        value
    }

    /// GET, asserting 200.
    pub async fn get(&self, path: &str) -> Value {
        let (status, value) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {value}");
        value
    }
}

/// A real SMTP server (`interop/smtp.mjs`, Nodemailer's `smtp-server`) on
/// a free loopback port, stopped when dropped. Every message it receives
/// is one JSON line on its stdout: `{"mail_from", "rcpt_to": [...], "user",
/// "data"}` (`data`: the raw message, headers and body).
pub struct SmtpListener {
    child: Child,
    lines: mpsc::Receiver<String>,
    port: u16,
}

impl Drop for SmtpListener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpListener {
    /// Starts the listener and waits for its `READY <port>` line (run
    /// `npm ci` in `interop/` first).
    pub fn start() -> Self {
        let mut command = Command::new("node");
        command
            .arg(interop_dir().join("smtp.mjs"))
            .env("SMTP_PORT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!("cannot start node interop/smtp.mjs (Node.js 20+ and `npm ci` in interop/): {e}")
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                panic!("smtp.mjs did not get ready within 30 s ({e}); is `npm ci` done in interop/?")
            }
        };
        let Some(port) = ready.strip_prefix("READY ").and_then(|p| p.trim().parse().ok()) else {
            let _ = child.kill();
            panic!("expected `READY <port>` from smtp.mjs, got {ready:?}")
        };
        Self { child, lines, port }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What to give jit as `--smtp-url` / `JIT_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The next message received within `patience`, if any.
    pub fn try_next_mail(&self, patience: Duration) -> Option<Value> {
        let line = self.lines.recv_timeout(patience).ok()?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("smtp.mjs printed {line:?}, not JSON: {e}")))
    }

    /// The next message (waits up to 20 s, then panics).
    pub fn next_mail(&self) -> Value {
        self.try_next_mail(Duration::from_secs(20)).unwrap_or_else(|| panic!("no mail arrived within 20 s"))
    }
}

/// The raw message of a mail line of [`SmtpListener`], split into headers
/// and body (soft line breaks of quoted-printable undone).
pub fn mail_parts(mail: &Value) -> (String, String) {
    let data = mail["data"].as_str().unwrap_or_else(|| panic!("no data in {mail}"));
    let (headers, body) = data.split_once("\r\n\r\n").unwrap_or((data, ""));
    (headers.to_owned(), body.replace("=\r\n", ""))
}

/// The first run of exactly `digits` ASCII digits standing alone (not part
/// of a longer number) in `text`.
pub fn code_in(text: &str, digits: usize) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit()).find(|run| run.len() == digits).map(str::to_owned)
}
