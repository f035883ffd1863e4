//! Sending Email OTP codes: over SMTP ([`SmtpMailer`], `lettre` on tokio
//! with rustls), or — when no SMTP server is configured — to the server log
//! ([`LogMailer`]), clearly marked as a development fallback, so that a code
//! is never silently dropped.
//!
//! # SMTP URLs (`--smtp-url` / `JIT_SMTP_URL`)
//!
//! | URL | transport |
//! |---|---|
//! | `smtp://127.0.0.1:2525` | plain SMTP, no TLS (port 25 by default): for a local relay, development and tests |
//! | `smtp://user:pass@mail.example.com?tls=starttls` | STARTTLS, required (port 587 by default); `tls=required` means the same |
//! | `smtps://user:pass@mail.example.com` | implicit TLS (port 465 by default) |
//! | `smtp://mail.example.com?tls=opportunistic` | STARTTLS if offered, else plain (not recommended: a network attacker can strip it) |
//!
//! User name and password are percent-decoded. Certificates are checked
//! with the platform's verifier. Credentials are refused over an
//! unencrypted connection to any host but the loopback one. A path names
//! the host in `EHLO` (`smtp://relay:25/jit.example.com`).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use time::Duration;
use url::Url;

/// The sender unless configured otherwise.
pub const DEFAULT_FROM: &str = "jit <no-reply@localhost>";
/// How long one SMTP exchange may take unless configured otherwise.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the mail says besides the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeMail {
    /// Who sends it (`jit` or the configured display name).
    pub product: String,
    /// The application being signed in to, if known.
    pub application: Option<String>,
    /// How long the code is valid.
    pub valid_for: Duration,
}

impl CodeMail {
    /// The subject line (without the code: subjects show in notifications).
    pub fn subject(&self) -> String {
        format!("Your {} sign-in code", one_line(&self.product))
    }

    /// The plain-text body: the code, its lifetime, and what to do if it
    /// was not requested.
    pub fn body(&self, code: &str) -> String {
        let intro = match &self.application {
            Some(application) => format!("Your code to sign in to {} is:", one_line(application)),
            None => format!("Your {} sign-in code is:", one_line(&self.product)),
        };
        format!(
            "{intro}\n\n    {code}\n\nIt is valid for {} and can be used once. Do not give it to anyone.\n\n\
             If you did not request this code, ignore this email.\n",
            human_duration(self.valid_for)
        )
    }
}

/// Why a code could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// The SMTP settings are unusable.
    #[error("invalid SMTP configuration: {0}")]
    Config(String),
    /// The recipient is not a usable email address.
    #[error("cannot send email to {0}: not a valid email address")]
    Address(String),
    /// The SMTP server could not be reached or refused the message.
    #[error("the email could not be sent: {0}")]
    Send(String),
}

/// Sends Email OTP codes.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `code` to `to` (the user's email attribute).
    async fn send_code(&self, to: &str, code: &str, context: &CodeMail) -> Result<(), MailError>;
}

/// Sender and timeout of [`SmtpMailer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpOptions {
    /// The `From:` mailbox, e.g. `jit <no-reply@example.com>`.
    pub from: String,
    /// How long connecting and each SMTP command may take.
    pub timeout: std::time::Duration,
}

impl Default for SmtpOptions {
    fn default() -> Self {
        Self { from: DEFAULT_FROM.to_owned(), timeout: DEFAULT_TIMEOUT }
    }
}

/// Sends codes through an SMTP server, one connection per message.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    server: String,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer").field("server", &self.server).field("from", &self.from.to_string()).finish()
    }
}

impl SmtpMailer {
    /// A mailer for the SMTP server at `url` (see the [module](self) docs
    /// for the forms). Does not connect yet.
    pub fn from_url(url: &str, options: &SmtpOptions) -> Result<Self, MailError> {
        let mut parsed = Url::parse(url).map_err(|e| MailError::Config(format!("the SMTP URL is not a URL: {e}")))?;
        let server = redact(&parsed);
        let config = |message: String| MailError::Config(format!("{server}: {message}"));
        let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| config("no host".into()))?.to_owned();
        let mut tls = None;
        for (key, value) in parsed.query_pairs() {
            match key.as_ref() {
                "tls" => tls = Some(value.into_owned()),
                other => return Err(config(format!("unknown parameter {other:?} (only tls=starttls|opportunistic)"))),
            }
        }
        let (encrypted, lettre_tls) = match (parsed.scheme(), tls.as_deref()) {
            ("smtp", None) => (false, None),
            ("smtp", Some("starttls" | "required")) => (true, Some("required")),
            ("smtp", Some("opportunistic")) => (false, Some("opportunistic")),
            ("smtps", None) => (true, None),
            ("smtp" | "smtps", Some(other)) => {
                return Err(config(format!("unknown tls={other:?}: use smtps://, or smtp:// with tls=starttls")));
            }
            (scheme, _) => return Err(config(format!("unknown scheme {scheme:?}: use smtp:// or smtps://"))),
        };
        let loopback = is_loopback(&host);
        let has_credentials = !parsed.username().is_empty() || parsed.password().is_some();
        if has_credentials && !encrypted && !loopback {
            return Err(config(format!(
                "refusing to send SMTP credentials unencrypted to {host}: use smtps:// or add ?tls=starttls"
            )));
        }
        parsed.set_query(lettre_tls.map(|t| format!("tls={t}")).as_deref());
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(parsed.as_str())
            .map_err(|e| config(e.to_string()))?
            .timeout(Some(options.timeout))
            .build();
        let from: Mailbox = options
            .from
            .parse()
            .map_err(|e| MailError::Config(format!("the sender address {:?} is invalid: {e}", options.from)))?;
        if !encrypted && !loopback {
            tracing::warn!(server = %server, "email to the SMTP server is not encrypted (use smtps:// or ?tls=starttls)");
        }
        Ok(Self { transport, from, server })
    }

    /// The server's URL without its password, for logs.
    pub fn server(&self) -> &str {
        &self.server
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send_code(&self, to: &str, code: &str, context: &CodeMail) -> Result<(), MailError> {
        // An address alone (no display name), so nothing but an address can
        // reach the header.
        let address: Address = to.trim().parse().map_err(|_| MailError::Address(mask_address(to)))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, address))
            .subject(context.subject())
            .header(ContentType::TEXT_PLAIN)
            .body(context.body(code))
            .map_err(|e| MailError::Send(format!("cannot build the message: {e}")))?;
        self.transport.send(message).await.map_err(|e| MailError::Send(format!("SMTP server {}: {e}", self.server)))?;
        tracing::info!(to = %mask_address(to), server = %self.server, "email OTP code sent");
        Ok(())
    }
}

/// No SMTP server configured: writes each code to the server log at WARN
/// level, marked `DEVELOPMENT FALLBACK`, so that development setups work
/// and no code is silently dropped. Not for production: anyone who reads
/// the log can pass the Email OTP step.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send_code(&self, to: &str, code: &str, context: &CodeMail) -> Result<(), MailError> {
        tracing::warn!("{}", fallback_line(to, code, context));
        Ok(())
    }
}

/// The log line of [`LogMailer`]: the code (that is its purpose), the
/// masked address and the lifetime; nothing else.
pub fn fallback_line(to: &str, code: &str, context: &CodeMail) -> String {
    format!(
        "DEVELOPMENT FALLBACK: no SMTP configured; email OTP code for {}: {} (valid for {}; set --smtp-url / JIT_SMTP_URL to send it by email)",
        mask_address(to),
        one_line(code),
        human_duration(context.valid_for)
    )
}

/// The mailer for the configuration: [`SmtpMailer`] for an SMTP URL,
/// [`LogMailer`] (with a warning now) for none.
pub fn configured_mailer(smtp_url: Option<&str>, options: &SmtpOptions) -> Result<Arc<dyn Mailer>, MailError> {
    match smtp_url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(url) => {
            let mailer = SmtpMailer::from_url(url, options)?;
            tracing::info!(server = %mailer.server(), "Email OTP codes are sent by SMTP");
            Ok(Arc::new(mailer))
        }
        None => {
            tracing::warn!(
                "DEVELOPMENT FALLBACK: no SMTP configured (--smtp-url / JIT_SMTP_URL); Email OTP codes will be written to this log"
            );
            Ok(Arc::new(LogMailer))
        }
    }
}

/// An address for logs: `a***@example.com`.
pub fn mask_address(address: &str) -> String {
    match address.trim().rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() => {
            let first: String = local.chars().take(1).collect();
            one_line(&format!("{first}***@{domain}"))
        }
        _ => "***".to_owned(),
    }
}

/// `value` with control characters (line breaks above all) replaced, for
/// log lines and headers.
fn one_line(value: &str) -> String {
    value.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// `5 minutes`, `1 minute`, `90 seconds`: a lifetime as people read it.
pub fn human_duration(duration: Duration) -> String {
    let seconds = duration.whole_seconds();
    let (n, unit) = if seconds >= 60 && seconds % 60 == 0 { (seconds / 60, "minute") } else { (seconds, "second") };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use super::*;

    fn mail() -> CodeMail {
        CodeMail { product: "jit".into(), application: Some("Portal".into()), valid_for: Duration::minutes(10) }
    }

    #[test]
    fn the_mail_says_the_code_its_lifetime_and_what_to_do_if_unrequested() {
        let body = mail().body("042917");
        assert_eq!(
            body,
            "Your code to sign in to Portal is:\n\n    042917\n\nIt is valid for 10 minutes and can be used once. \
             Do not give it to anyone.\n\nIf you did not request this code, ignore this email.\n"
        );
        assert_eq!(mail().subject(), "Your jit sign-in code");
        let bare = CodeMail { application: None, valid_for: Duration::seconds(90), ..mail() };
        assert!(bare.body("1").starts_with("Your jit sign-in code is:"));
        assert!(bare.body("1").contains("valid for 90 seconds"));
        let evil = CodeMail { product: "x\r\nBcc: all@example.com".into(), ..mail() };
        assert_eq!(evil.subject(), "Your x??Bcc: all@example.com sign-in code");
        assert_eq!(human_duration(Duration::minutes(1)), "1 minute");
    }

    #[test]
    fn addresses_are_masked_in_logs() {
        assert_eq!(mask_address("alice@example.com"), "a***@example.com");
        assert_eq!(mask_address(" Ünal@example.com"), "Ü***@example.com");
        assert_eq!(mask_address("@example.com"), "***");
        assert_eq!(mask_address("nobody"), "***");
        assert_eq!(mask_address("a@x\n2026 fake log line"), "a***@x?2026 fake log line");
    }

    #[test]
    fn smtp_urls() {
        let ok = |url: &str| SmtpMailer::from_url(url, &SmtpOptions::default()).map(|m| m.server().to_owned());
        let err = |url: &str| match SmtpMailer::from_url(url, &SmtpOptions::default()) {
            Err(MailError::Config(message)) => message,
            other => panic!("{url}: expected a configuration error, got {other:?}"),
        };
        assert_eq!(ok("smtp://127.0.0.1:2525").unwrap(), "smtp://127.0.0.1:2525");
        assert_eq!(ok("smtps://u:p%40ss@mail.example.com").unwrap(), "smtps://u:***@mail.example.com");
        ok("smtp://u:p@mail.example.com:587?tls=starttls").unwrap();
        ok("smtp://mail.example.com?tls=required").unwrap();
        ok("smtp://u:p@localhost:2525").unwrap();
        ok("smtp://u:p@[::1]:2525").unwrap();
        assert!(err("smtp://u:secret@mail.example.com").contains("refusing to send SMTP credentials unencrypted"));
        assert!(err("smtp://u:secret@mail.example.com?tls=opportunistic").contains("unencrypted"));
        assert!(!err("smtp://u:secret@mail.example.com").contains("secret"), "no password in errors");
        assert!(err("http://mail.example.com").contains("unknown scheme"));
        assert!(err("smtp://mail.example.com?tls=maybe").contains("unknown tls"));
        assert!(err("smtp://mail.example.com?foo=1").contains("unknown parameter"));
        assert!(matches!(
            SmtpMailer::from_url(
                "smtp://127.0.0.1",
                &SmtpOptions { from: "not an address".into(), ..Default::default() }
            ),
            Err(MailError::Config(_))
        ));
        assert!(matches!(SmtpMailer::from_url("not a url", &SmtpOptions::default()), Err(MailError::Config(_))));
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut bytes) = self.0.lock() {
                bytes.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn without_smtp_the_code_is_logged_as_a_development_fallback() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let mailer = configured_mailer(None, &SmtpOptions::default()).unwrap();
            runtime.block_on(mailer.send_code("alice@example.com", "042917", &mail())).unwrap();
        });
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line = log.lines().find(|l| l.contains("042917")).expect("the code is in the log");
        assert!(line.contains("WARN"));
        assert!(line.contains(
            "DEVELOPMENT FALLBACK: no SMTP configured; email OTP code for a***@example.com: 042917 (valid for 10 minutes"
        ));
        assert!(!log.contains("alice@"), "the address is masked");
    }
}
