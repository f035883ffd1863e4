//! `GET /metrics`: what jit counts, in the Prometheus text format, for a
//! scraper holding the admin token (a bearer token, as for the admin API).
//! The binary installs the recorder ([`install`]); the crates below count
//! through the `metrics` facade:
//!
//! - `jit_sign_ins_started_total{application}`,
//!   `jit_sign_ins_completed_total{application, connection, outcome}` (jit-flow);
//! - `jit_provisioning_decisions_total{connection, decision}`,
//!   `jit_provisioning_refusals_total{connection, reason}` (jit-flow);
//! - `jit_idp_call_duration_seconds{connection, call}` (jit-flow);
//! - `jit_db_statements_total{kind}`, `jit_db_commits_total` (jit-store);
//! - `jit_http_request_duration_seconds{route, status}` ([`track`], here).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;

/// Latency buckets, in seconds: 1 ms to 10 s.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the process-wide recorder (once, in the binary): durations are
/// histograms with [`BUCKETS`].
pub fn install() -> Result<PrometheusHandle, BuildError> {
    PrometheusBuilder::new().set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)?.install_recorder()
}

/// `GET /metrics`.
pub async fn render(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "metrics are not recorded by this server").into_response(),
    }
}

/// Records every request's latency by route (the route's pattern, never the
/// raw path: no unbounded labels) and status class.
pub async fn track(request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::histogram!("jit_http_request_duration_seconds", "route" => route, "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
}
