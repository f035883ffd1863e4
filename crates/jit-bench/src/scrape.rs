//! What jit itself reports: its database counters from `GET /metrics` (the
//! same figures its operators see) and its memory from `/proc`.

use anyhow::{Context, Result, ensure};

use crate::process::{ADMIN_TOKEN, Jit};

/// jit's database counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DbCounters {
    /// Statements, reads and writes.
    pub statements: f64,
    /// Of which writes.
    pub writes: f64,
    /// Commits that wrote.
    pub commits: f64,
}

impl DbCounters {
    /// What happened between `self` and `later`.
    pub fn until(self, later: Self) -> Self {
        Self {
            statements: later.statements - self.statements,
            writes: later.writes - self.writes,
            commits: later.commits - self.commits,
        }
    }
}

/// Reads jit's counters from `/metrics`.
pub async fn db_counters(client: &reqwest::Client, jit: &Jit) -> Result<DbCounters> {
    let response =
        client.get(format!("{}/metrics", jit.url)).bearer_auth(ADMIN_TOKEN).send().await.context("GET /metrics")?;
    let status = response.status();
    let text = response.text().await.context("GET /metrics")?;
    ensure!(status.is_success(), "GET /metrics answered {status}: {text}");
    Ok(parse(&text))
}

/// The counters in a Prometheus text exposition.
fn parse(text: &str) -> DbCounters {
    let mut counters = DbCounters::default();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        if name.starts_with("jit_db_statements_total") {
            counters.statements += value;
            if name.contains("kind=\"write\"") {
                counters.writes += value;
            }
        } else if name == "jit_db_commits_total" {
            counters.commits += value;
        }
    }
    counters
}

/// The process's resident memory now and at its peak, in KiB (`VmRSS`,
/// `VmHWM` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|line| line.strip_prefix(name)?.trim().strip_suffix("kB")?.trim().parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_the_exposition() {
        let text = "# TYPE jit_db_statements_total counter\n\
                    jit_db_statements_total{kind=\"read\"} 10\n\
                    jit_db_statements_total{kind=\"write\"} 4\n\
                    jit_db_commits_total 3\n\
                    jit_http_request_duration_seconds_count{route=\"/x\"} 9\n";
        assert_eq!(parse(text), DbCounters { statements: 14.0, writes: 4.0, commits: 3.0 });
        assert_eq!(parse(text).until(DbCounters { statements: 20.0, writes: 6.0, commits: 4.0 }).commits, 1.0);
    }

    #[test]
    fn this_process_has_a_resident_size() {
        let (now, peak) = rss_kib(std::process::id()).unwrap();
        assert!(now > 0 && peak >= now);
    }
}
