//! Latency percentiles and the figures of one measured phase.

use std::time::Duration;

/// The `p`-th percentile (0 < p ≤ 100) of `sorted` (ascending) by the nearest-rank method:
/// the smallest value that at least `p` % of the values do not exceed. `None` when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (p / 100.0 * n as f64).ceil();
    // Clamp into 1..=n: p ≤ 0 gives the minimum, p ≥ 100 the maximum.
    let rank = if rank.is_nan() || rank < 1.0 {
        1
    } else if rank >= n as f64 {
        n
    } else {
        rank as usize
    };
    sorted.get(rank - 1).copied()
}

/// What one phase measured.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseStats {
    /// Logins attempted.
    pub logins: usize,
    /// Logins that failed.
    pub errors: usize,
    /// From the first request to the last answer.
    pub wall: Duration,
    /// Median latency of the successful logins.
    pub p50: Option<Duration>,
    /// 99th percentile latency of the successful logins.
    pub p99: Option<Duration>,
    /// CPU time the jit process spent during the phase.
    pub jit_cpu: Duration,
    /// CPU time the bench process (test IdP + load generator) spent during the phase.
    pub bench_cpu: Duration,
    /// CPU time the database server's processes serving jit spent during the phase, when
    /// they run apart from jit and can be seen (a local PostgreSQL).
    pub db_cpu: Option<Duration>,
    /// CPU time the external IdP's process spent during the phase (node `oidc-provider`).
    pub idp_cpu: Option<Duration>,
}

/// CPU time spent during a phase, by whom.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSpent {
    /// The jit process (SQLite included: it runs inside jit).
    pub jit: Duration,
    /// This process: the test IdP and the load generator.
    pub bench: Duration,
    /// A separate database server's processes serving jit, when known.
    pub db: Option<Duration>,
    /// The external IdP, when it runs in its own process (node `oidc-provider`).
    pub idp: Option<Duration>,
}

impl PhaseStats {
    /// The IdP's CPU time per login attempted, in milliseconds.
    pub fn idp_cpu_ms_per_login(&self) -> Option<f64> {
        self.idp_cpu.map(|cpu| per_login_ms(cpu, self.logins))
    }

    /// jit's CPU time per login over the IdP's.
    pub fn jit_to_idp(&self) -> Option<f64> {
        let idp = self.idp_cpu?.as_secs_f64();
        (idp > 0.0).then(|| self.jit_cpu.as_secs_f64() / idp)
    }

    /// Summarises a phase from the latencies of its successful logins.
    pub fn new(mut latencies: Vec<Duration>, errors: usize, wall: Duration, cpu: CpuSpent) -> Self {
        latencies.sort_unstable();
        Self {
            logins: latencies.len() + errors,
            errors,
            wall,
            p50: percentile(&latencies, 50.0),
            p99: percentile(&latencies, 99.0),
            jit_cpu: cpu.jit,
            bench_cpu: cpu.bench,
            db_cpu: cpu.db,
            idp_cpu: cpu.idp,
        }
    }

    /// Successful logins per second of wall time.
    pub fn throughput(&self) -> f64 {
        let seconds = self.wall.as_secs_f64();
        if seconds > 0.0 { (self.logins - self.errors) as f64 / seconds } else { 0.0 }
    }

    /// jit's CPU milliseconds per attempted login.
    pub fn jit_cpu_ms_per_login(&self) -> f64 {
        per_login_ms(self.jit_cpu, self.logins)
    }

    /// The bench process's CPU milliseconds per attempted login.
    pub fn bench_cpu_ms_per_login(&self) -> f64 {
        per_login_ms(self.bench_cpu, self.logins)
    }

    /// The database server's CPU milliseconds per attempted login, when known.
    pub fn db_cpu_ms_per_login(&self) -> Option<f64> {
        self.db_cpu.map(|cpu| per_login_ms(cpu, self.logins))
    }

    /// How many cores jit kept busy on average (CPU time / wall time).
    pub fn jit_cores(&self) -> f64 {
        let seconds = self.wall.as_secs_f64();
        if seconds > 0.0 { self.jit_cpu.as_secs_f64() / seconds } else { 0.0 }
    }
}

fn per_login_ms(cpu: Duration, logins: usize) -> f64 {
    if logins == 0 { 0.0 } else { cpu.as_secs_f64() * 1000.0 / logins as f64 }
}

/// Milliseconds with two decimals, `-` for none.
pub fn ms(value: Option<Duration>) -> String {
    value.map_or_else(|| "-".to_owned(), |d| format!("{:.2}", d.as_secs_f64() * 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(values: impl IntoIterator<Item = u64>) -> Vec<Duration> {
        values.into_iter().map(Duration::from_millis).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let hundred = millis(1..=100);
        assert_eq!(percentile(&hundred, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&hundred, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&hundred, 100.0), Some(Duration::from_millis(100)));

        let ten = millis(1..=10);
        assert_eq!(percentile(&ten, 50.0), Some(Duration::from_millis(5)));
        assert_eq!(percentile(&ten, 99.0), Some(Duration::from_millis(10)), "p99 of few values is the maximum");

        let two_hundred = millis(1..=200);
        assert_eq!(percentile(&two_hundred, 99.0), Some(Duration::from_millis(198)));
    }

    #[test]
    fn percentiles_at_the_edges() {
        assert_eq!(percentile(&[], 50.0), None);
        let one = millis([7]);
        assert_eq!(percentile(&one, 50.0), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&one, 99.0), Some(Duration::from_millis(7)));
        let three = millis([1, 2, 3]);
        assert_eq!(percentile(&three, 0.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&three, 150.0), Some(Duration::from_millis(3)));
        assert_eq!(percentile(&three, f64::NAN), Some(Duration::from_millis(1)));
    }

    #[test]
    fn phase_figures() {
        let cpu = CpuSpent {
            jit: Duration::from_millis(500),
            bench: Duration::from_millis(250),
            db: Some(Duration::from_millis(100)),
            idp: None,
        };
        let stats = PhaseStats::new(millis([30, 10, 20, 40]), 1, Duration::from_secs(2), cpu);
        assert_eq!(stats.logins, 5);
        assert_eq!(stats.errors, 1);
        assert_eq!(stats.p50, Some(Duration::from_millis(20)), "latencies are sorted first");
        assert_eq!(stats.p99, Some(Duration::from_millis(40)));
        assert!((stats.throughput() - 2.0).abs() < 1e-9, "successful logins only");
        assert!((stats.jit_cpu_ms_per_login() - 100.0).abs() < 1e-9);
        assert!((stats.bench_cpu_ms_per_login() - 50.0).abs() < 1e-9);
        assert!((stats.jit_cores() - 0.25).abs() < 1e-9);
        assert_eq!(stats.db_cpu_ms_per_login(), Some(20.0));
        assert_eq!(ms(stats.p50), "20.00");
        assert_eq!(ms(None), "-");
    }

    #[test]
    fn an_empty_phase_divides_by_nothing() {
        let stats = PhaseStats::new(Vec::new(), 0, Duration::ZERO, CpuSpent::default());
        assert_eq!(stats.throughput(), 0.0);
        assert_eq!(stats.jit_cpu_ms_per_login(), 0.0);
        assert_eq!(stats.jit_cores(), 0.0);
        assert_eq!(stats.db_cpu_ms_per_login(), None);
    }
}
