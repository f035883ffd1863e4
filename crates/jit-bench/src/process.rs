//! `jit serve` as a child process: started on a port and database, ready when it
//! prints `jit is listening`, killed when dropped. Its output is not shown (two
//! log lines a login would bury the results) but the last lines are kept for
//! error messages; jit still writes its logs, as it would in production.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The admin API token the benchmarked jit gets.
pub const ADMIN_TOKEN: &str = "jit-bench-admin-token-of-32-characters-or-more";

/// What jit prints once it accepts connections.
const READY: &str = "jit is listening";

/// How long jit may take to migrate and start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How many of jit's last output lines are kept.
const TAIL_LINES: usize = 15;

/// A running `jit serve`.
pub struct Jit {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Jit {
    /// Starts `jit serve` from `binary` on `port` with `database_url`, and waits until it
    /// listens. The log filter is the end-to-end tests' (`info`, quiet SQL and HTTP traces).
    pub fn start(binary: &Path, port: u16, database_url: &str) -> Result<Self> {
        let url = format!("http://127.0.0.1:{port}");
        let mut child = Command::new(binary)
            .arg("serve")
            .env("JIT_LISTEN", format!("127.0.0.1:{port}"))
            .env("JIT_PUBLIC_URL", &url)
            .env("JIT_DATABASE_URL", database_url)
            .env("JIT_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("JIT_SECRET_KEY", jit_testkit::harness::SECRET_KEY)
            .env("JIT_LOG_FORMAT", "text")
            .env("RUST_LOG", "info,sqlx=warn,tower_http=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let (ready_tx, ready_rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            collect(stdout, tail.clone(), Some(ready_tx));
        }
        if let Some(stderr) = child.stderr.take() {
            collect(stderr, tail.clone(), None);
        }
        let jit = Self { child, url, tail };
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(()) => Ok(jit),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!("jit did not print {READY:?} within {START_TIMEOUT:?}; its last lines:\n{}", jit.tail())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("jit exited while starting; its last lines:\n{}", jit.tail())
            }
        }
    }

    /// The operating system's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How it ended, if it did.
    pub fn exit_status(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(status.to_string()),
            Err(error) => Some(format!("its status cannot be read: {error}")),
        }
    }

    /// Its last output lines.
    pub fn tail(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        tail.iter().map(|line| format!("  [jit] {line}\n")).collect()
    }
}

impl Drop for Jit {
    /// Stops jit as an operator would (SIGTERM: in-flight requests finish,
    /// and a profiler wrapping it, such as valgrind, writes its output),
    /// killing it after [`STOP_GRACE`].
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = std::time::Instant::now() + STOP_GRACE;
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long a stopping jit gets before it is killed.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads `stream` line by line on a thread, keeping the last lines in `tail`; signals
/// `ready` at the first line announcing that jit listens.
fn collect(stream: impl Read + Send + 'static, tail: Arc<Mutex<VecDeque<String>>>, ready: Option<mpsc::Sender<()>>) {
    std::thread::spawn(move || {
        let mut ready = ready;
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if line.starts_with(READY)
                && let Some(ready) = ready.take()
            {
                let _ = ready.send(());
            }
            let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        // Dropping `ready` unsent tells the waiter that jit's output ended.
    });
}

/// A free port on loopback, below the ephemeral range (see `jit_testkit::harness::free_port`).
pub fn free_port() -> Result<u16> {
    Ok(jit_testkit::harness::free_port())
}
