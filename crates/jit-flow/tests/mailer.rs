//! Email OTP mail through a real SMTP server: `interop/smtp.mjs` (the npm
//! `smtp-server` package), spawned as a child process. Skipped, with a
//! message, when Node.js or the interop packages (`cd interop && npm ci`)
//! are missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use jit_flow::factors::mailer::{CodeMail, MailError, Mailer, SmtpMailer, SmtpOptions};
use serde_json::Value;

/// How long the listener may take to start or to show a message.
const PATIENCE: Duration = Duration::from_secs(20);

/// A running `interop/smtp.mjs`, stopped on drop.
struct SmtpListener {
    child: Child,
    lines: Receiver<String>,
    port: u16,
}

impl SmtpListener {
    /// Starts the listener on a free port, or says why it cannot.
    fn start() -> Option<Self> {
        let interop = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop");
        if !interop.join("node_modules/smtp-server").is_dir() {
            eprintln!("SKIPPED: interop/node_modules/smtp-server is missing; run `cd interop && npm ci`");
            return None;
        }
        let mut child = match Command::new("node")
            .arg("smtp.mjs")
            .current_dir(&interop)
            .env("SMTP_PORT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("SKIPPED: `node` is not installed (Node.js 20+ is needed for interop/smtp.mjs)");
                return None;
            }
            Err(e) => panic!("cannot start node interop/smtp.mjs: {e}"),
        };
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut listener = Self { child, lines, port: 0 };
        let ready = listener.next_line();
        listener.port = ready
            .strip_prefix("READY ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("expected `READY <port>` from smtp.mjs, got {ready:?}"));
        Some(listener)
    }

    fn next_line(&self) -> String {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("smtp.mjs said nothing for {PATIENCE:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("smtp.mjs exited"),
        }
    }

    /// The next message the listener received.
    fn next_mail(&self) -> Value {
        serde_json::from_str(&self.next_line()).expect("one JSON line per message")
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }
}

impl Drop for SmtpListener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options() -> SmtpOptions {
    SmtpOptions { from: "jit <no-reply@jit.test>".into(), timeout: Duration::from_secs(10) }
}

fn mail() -> CodeMail {
    CodeMail { product: "jit".into(), application: Some("Portal".into()), valid_for: time::Duration::minutes(10) }
}

#[tokio::test]
async fn the_code_arrives_in_a_plain_text_mail() {
    let Some(listener) = SmtpListener::start() else { return };
    let mailer = SmtpMailer::from_url(&listener.url(), &options()).unwrap();
    mailer.send_code("Ann@Example.com", "042917", &mail()).await.unwrap();

    let received = listener.next_mail();
    assert_eq!(received["mail_from"], "no-reply@jit.test");
    assert_eq!(received["rcpt_to"], serde_json::json!(["Ann@Example.com"]));
    assert_eq!(received["user"], Value::Null);
    let data = received["data"].as_str().unwrap();
    let (headers, body) = data.split_once("\r\n\r\n").expect("headers and body");
    assert!(headers.contains("From: jit <no-reply@jit.test>\r\n"), "{headers}");
    assert!(headers.contains("To: Ann@Example.com\r\n"), "{headers}");
    assert!(headers.contains("Subject: Your jit sign-in code\r\n"), "{headers}");
    assert!(headers.contains("Content-Type: text/plain; charset=utf-8\r\n"), "{headers}");
    assert!(body.contains("\r\n    042917\r\n"), "the code, on its own line: {body}");
    assert!(body.contains("valid for 10 minutes"), "{body}");
    assert!(body.contains("If you did not request this code, ignore this email."), "{body}");

    // Credentials in the URL are used (AUTH over plain SMTP only to loopback).
    let url = format!("smtp://jit:s%3Acret@127.0.0.1:{}", listener.port);
    let mailer = SmtpMailer::from_url(&url, &options()).unwrap();
    assert!(!format!("{mailer:?}").contains("cret"));
    mailer.send_code("bob@example.com", "555111", &mail()).await.unwrap();
    let received = listener.next_mail();
    assert_eq!(received["user"], "jit");
    assert!(received["data"].as_str().unwrap().contains("555111"));
}

#[tokio::test]
async fn failures_are_errors_not_silence() {
    // Nobody listens on a port that was just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mailer = SmtpMailer::from_url(&format!("smtp://127.0.0.1:{port}"), &options()).unwrap();
    let error = mailer.send_code("ann@example.com", "042917", &mail()).await.unwrap_err();
    assert!(matches!(error, MailError::Send(_)), "{error:?}");
    assert!(!error.to_string().contains("042917"));

    let error = mailer.send_code("not an address\r\nBcc: x@y.z", "042917", &mail()).await.unwrap_err();
    assert!(matches!(error, MailError::Address(_)), "{error:?}");
}
