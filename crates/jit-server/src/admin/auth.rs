//! Bearer-token authentication of the admin API, with failed attempts
//! limited per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jit_primitives::secret::{secrets_match, stored_form};
use time::{Duration, OffsetDateTime};

use super::error::ApiError;
use crate::AppState;

/// The challenge sent when no token came.
const CHALLENGE: &str = "Bearer realm=\"jit admin API\"";
/// The challenge sent when a token came and is wrong (RFC 6750 §3.1).
const CHALLENGE_INVALID: &str = "Bearer realm=\"jit admin API\", error=\"invalid_token\"";

/// Lets a request through only with `Authorization: Bearer <admin token>`;
/// marks every answer `Cache-Control: no-store` (admin answers can hold
/// secrets shown once).
pub async fn require_admin_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let client = request.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|ConnectInfo(a)| a.ip());
    let now = state.clock.now();
    if let Some(client) = client
        && let Some(retry_at) = state.admin_failures.blocked(client, now)
    {
        tracing::warn!(event = "admin_rate_limited", client = %client, "admin API request refused unchecked");
        let seconds = (retry_at - now).whole_seconds().max(1);
        return ApiError::too_many_requests(
            format!("too many failed admin authentications from this address; try again in {seconds} s"),
            seconds,
        )
        .into_response();
    }
    if let Err(error) = check(request.headers(), &state.admin_token) {
        // A wrong credential is a guess; a request without one is not.
        if let Some(client) = client.filter(|_| request.headers().contains_key(AUTHORIZATION)) {
            state.admin_failures.record(client, now);
        }
        tracing::warn!(event = "admin_unauthorized", path = %request.uri().path(), "admin API request refused");
        return error.into_response();
    }
    let mut response = next.run(request).await;
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn check(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "the admin API needs the header Authorization: Bearer <admin token>",
            CHALLENGE,
        ));
    };
    let wrong = || ApiError::unauthorized("the admin token is wrong", CHALLENGE_INVALID);
    let value = value.to_str().map_err(|_| wrong())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(wrong)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthorized(
            "the admin API takes a bearer token: Authorization: Bearer <admin token>",
            CHALLENGE,
        ));
    }
    let token = token.trim();
    // Compare fixed-length digests in constant time, so that neither the
    // content nor the length of the token leaks through timing. An empty
    // configured token opens nothing.
    if expected.is_empty() || token.is_empty() || !secrets_match(&stored_form(token), &stored_form(expected)) {
        return Err(wrong());
    }
    Ok(())
}

/// Failed admin authentications per client address, in fixed windows: past
/// [`FailureLimiter::MAX_FAILURES`] in a window, the address's requests are
/// refused unchecked until the window ends, so a token cannot be guessed
/// faster than that. (A rate limiter that only counts requests cannot do
/// this: it would have to compare the token before knowing whether to
/// count.) Per instance; bounded in memory.
#[derive(Debug, Default)]
pub struct FailureLimiter {
    windows: Mutex<HashMap<IpAddr, (OffsetDateTime, u32)>>,
}

impl FailureLimiter {
    /// Failures allowed per address and window.
    pub const MAX_FAILURES: u32 = 10;
    /// The window.
    pub const WINDOW: Duration = Duration::minutes(1);
    /// Addresses remembered at most.
    const MAX_ADDRESSES: usize = 10_000;

    /// When `client` may try again, if it is blocked at `now`.
    pub fn blocked(&self, client: IpAddr, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let windows = self.windows.lock().ok()?;
        let (start, failures) = windows.get(&client)?;
        let end = *start + Self::WINDOW;
        (now < end && *failures >= Self::MAX_FAILURES).then_some(end)
    }

    /// Counts a failure of `client` at `now`.
    pub fn record(&self, client: IpAddr, now: OffsetDateTime) {
        let Ok(mut windows) = self.windows.lock() else { return };
        if windows.len() >= Self::MAX_ADDRESSES {
            windows.retain(|_, (start, _)| now < *start + Self::WINDOW);
            if windows.len() >= Self::MAX_ADDRESSES {
                windows.clear();
            }
        }
        let entry = windows.entry(client).or_insert((now, 0));
        if now >= entry.0 + Self::WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_an_address_for_the_rest_of_its_window() {
        let limiter = FailureLimiter::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = OffsetDateTime::UNIX_EPOCH;
        for _ in 0..FailureLimiter::MAX_FAILURES {
            assert_eq!(limiter.blocked(a, t0), None);
            limiter.record(a, t0);
        }
        assert_eq!(limiter.blocked(a, t0 + Duration::seconds(59)), Some(t0 + FailureLimiter::WINDOW));
        assert_eq!(limiter.blocked(b, t0), None, "per address");
        assert_eq!(limiter.blocked(a, t0 + FailureLimiter::WINDOW), None, "the next window starts afresh");
        limiter.record(a, t0 + FailureLimiter::WINDOW);
        assert_eq!(limiter.blocked(a, t0 + FailureLimiter::WINDOW), None);
    }

    fn headers(value: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn only_the_right_bearer_token_passes() {
        assert!(check(&headers(Some("Bearer s3cret")), "s3cret").is_ok());
        assert!(check(&headers(Some("bearer s3cret")), "s3cret").is_ok());
        assert!(check(&headers(None), "s3cret").is_err());
        assert!(check(&headers(Some("Bearer s3cre")), "s3cret").is_err());
        assert!(check(&headers(Some("Basic s3cret")), "s3cret").is_err());
        assert!(check(&headers(Some("Bearer")), "s3cret").is_err());
        assert!(check(&headers(Some("Bearer ")), "").is_err());
    }
}
