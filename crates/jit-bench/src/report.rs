//! The results as a table for people and as JSON for tools.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::run::PhaseResult;
use crate::stats::ms;

/// The table's columns: title and width.
const COLUMNS: [(&str, usize); 18] = [
    ("backend", 8),
    ("phase", 9),
    ("conc", 4),
    ("logins", 6),
    ("errors", 6),
    ("logins/s", 8),
    ("p50 ms", 7),
    ("p99 ms", 7),
    ("jit CPU ms/login", 16),
    ("jit cores", 9),
    ("IdP CPU ms/login", 16),
    ("jit/IdP", 7),
    ("db CPU ms/login", 15),
    ("bench CPU ms/login", 18),
    ("stmts/login", 11),
    ("writes/login", 12),
    ("commits/login", 13),
    ("RSS MiB", 7),
];

/// The results as an aligned table, one line a phase, header first.
pub fn table(results: &[PhaseResult]) -> String {
    let mut out = String::new();
    let header: Vec<String> = COLUMNS.iter().map(|(title, _)| (*title).to_owned()).collect();
    push_row(&mut out, &header);
    let rule: Vec<String> = COLUMNS.iter().map(|(_, width)| "-".repeat(*width)).collect();
    push_row(&mut out, &rule);
    for result in results {
        let stats = &result.stats;
        push_row(
            &mut out,
            &[
                result.backend.to_string(),
                result.phase.name().to_owned(),
                result.concurrency.to_string(),
                stats.logins.to_string(),
                if stats.errors == 0 { "0".to_owned() } else { format!("{}!", stats.errors) },
                format!("{:.1}", stats.throughput()),
                ms(stats.p50),
                ms(stats.p99),
                format!("{:.2}", stats.jit_cpu_ms_per_login()),
                format!("{:.2}", stats.jit_cores()),
                stats.idp_cpu_ms_per_login().map_or_else(|| "-".to_owned(), |cpu| format!("{cpu:.2}")),
                stats.jit_to_idp().map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}")),
                stats.db_cpu_ms_per_login().map_or_else(|| "-".to_owned(), |cpu| format!("{cpu:.2}")),
                format!("{:.2}", stats.bench_cpu_ms_per_login()),
                format!("{:.1}", per_login(result.db.statements, stats.logins)),
                format!("{:.1}", per_login(result.db.writes, stats.logins)),
                format!("{:.1}", per_login(result.db.commits, stats.logins)),
                result.rss_kib.map_or_else(|| "-".to_owned(), |(now, _)| format!("{:.1}", now as f64 / 1024.0)),
            ],
        );
    }
    out
}

/// `total` divided among `logins`.
fn per_login(total: f64, logins: usize) -> f64 {
    if logins == 0 { 0.0 } else { total / logins as f64 }
}

/// One line: text columns left-aligned, numbers right-aligned, two spaces apart.
fn push_row(out: &mut String, cells: &[String]) {
    let mut line = String::new();
    for (index, (cell, (_, width))) in cells.iter().zip(COLUMNS).enumerate() {
        if index > 0 {
            line.push_str("  ");
        }
        // The first two columns are words; the rest are numbers.
        let _ = if index < 2 { write!(line, "{cell:<width$}") } else { write!(line, "{cell:>width$}") };
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// The results as JSON; `context` holds the run's settings.
pub fn json(results: &[PhaseResult], context: Value) -> Value {
    let rows: Vec<Value> = results
        .iter()
        .map(|result| {
            let stats = &result.stats;
            json!({
                "backend": result.backend.to_string(),
                "phase": result.phase.name(),
                "concurrency": result.concurrency,
                "logins": stats.logins,
                "errors": stats.errors,
                "wall_seconds": stats.wall.as_secs_f64(),
                "logins_per_second": stats.throughput(),
                "p50_ms": stats.p50.map(|d| d.as_secs_f64() * 1000.0),
                "p99_ms": stats.p99.map(|d| d.as_secs_f64() * 1000.0),
                "jit_cpu_seconds": stats.jit_cpu.as_secs_f64(),
                "jit_cpu_ms_per_login": stats.jit_cpu_ms_per_login(),
                "jit_cores": stats.jit_cores(),
                "idp_cpu_ms_per_login": stats.idp_cpu_ms_per_login(),
                "jit_to_idp_cpu": stats.jit_to_idp(),
                "db_cpu_seconds": stats.db_cpu.map(|cpu| cpu.as_secs_f64()),
                "db_cpu_ms_per_login": stats.db_cpu_ms_per_login(),
                "bench_cpu_seconds": stats.bench_cpu.as_secs_f64(),
                "bench_cpu_ms_per_login": stats.bench_cpu_ms_per_login(),
                "db_statements_per_login": per_login(result.db.statements, stats.logins),
                "db_writes_per_login": per_login(result.db.writes, stats.logins),
                "db_commits_per_login": per_login(result.db.commits, stats.logins),
                "rss_mib": result.rss_kib.map(|(now, _)| now as f64 / 1024.0),
                "peak_rss_mib": result.rss_kib.map(|(_, peak)| peak as f64 / 1024.0),
                "idle_rss_mib": result.idle_rss_kib.map(|idle| idle as f64 / 1024.0),
                "error_samples": result.error_samples,
            })
        })
        .collect();
    json!({ "context": context, "results": rows })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::database::Backend;
    use crate::run::Phase;
    use crate::stats::{CpuSpent, PhaseStats};

    fn result(errors: usize) -> PhaseResult {
        PhaseResult {
            backend: Backend::Postgres,
            phase: Phase::Returning,
            concurrency: 32,
            stats: PhaseStats::new(
                vec![Duration::from_millis(10); 4],
                errors,
                Duration::from_secs(1),
                CpuSpent {
                    jit: Duration::from_millis(40),
                    bench: Duration::from_millis(20),
                    db: None,
                    idp: Some(Duration::from_millis(80)),
                },
            ),
            error_samples: vec!["boom".into(); errors],
            db: crate::scrape::DbCounters { statements: 40.0, writes: 12.0, commits: 8.0 },
            rss_kib: Some((20480, 30720)),
            idle_rss_kib: Some(10240),
        }
    }

    #[test]
    fn the_table_is_aligned_and_flags_errors() {
        let table = table(&[result(0), result(2)]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("backend   phase      conc  logins  errors  logins/s"), "{table}");
        assert_eq!(lines[0].len(), lines[1].len(), "{table}");
        assert_eq!(lines[2].len(), lines[1].len(), "{table}");
        assert!(
            lines[2].starts_with("postgres  returning    32       4       0       4.0    10.00    10.00"),
            "{table}"
        );
        assert!(lines[3].contains("      2!"), "{table}");
    }

    #[test]
    fn json_has_one_row_a_phase() {
        let value = json(&[result(1)], json!({"logins": 4}));
        assert_eq!(value["context"]["logins"], 4);
        assert_eq!(value["results"][0]["backend"], "postgres");
        assert_eq!(value["results"][0]["phase"], "returning");
        assert_eq!(value["results"][0]["errors"], 1);
        assert_eq!(value["results"][0]["p50_ms"], 10.0);
        assert_eq!(value["results"][0]["jit_cpu_ms_per_login"], 8.0);
        assert_eq!(value["results"][0]["db_cpu_ms_per_login"], Value::Null);
        assert_eq!(value["results"][0]["error_samples"][0], "boom");
        assert_eq!(value["results"][0]["db_statements_per_login"], 8.0, "per login attempted");
        assert_eq!(value["results"][0]["db_commits_per_login"], 1.6);
        assert_eq!(value["results"][0]["rss_mib"], 20.0);
        assert_eq!(value["results"][0]["idp_cpu_ms_per_login"], 16.0);
        assert_eq!(value["results"][0]["jit_to_idp_cpu"], 0.5);
    }
}
