//! The outbound HTTP client handed to `openidconnect`: a small async closure
//! over our own `reqwest` client (no redirects, a timeout on every call, a cap
//! on response sizes).

use std::future::Future;
use std::time::Duration;

use openidconnect::{HttpRequest, HttpResponse};

use crate::error::IdpError;

/// Largest response body read from an identity provider. Discovery documents,
/// key sets, token and userinfo responses are a few kilobytes.
const MAX_BODY: usize = 1024 * 1024;

/// What went wrong on the wire. `openidconnect` hands it back to us inside its
/// own error types, and [`TransportError::into_idp`] turns it into an
/// [`IdpError`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    /// No answer within the configured timeout.
    #[error("no answer from {url} within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    /// Connection refused, reset, TLS failure, oversized body...
    #[error("request to {url} failed: {reason}")]
    Failed { url: String, reason: String },
}

impl TransportError {
    pub(crate) fn into_idp(self) -> IdpError {
        match self {
            Self::Timeout { url, timeout } => IdpError::Timeout { url, timeout },
            Self::Failed { url, reason } => IdpError::Unreachable { url, reason },
        }
    }
}

/// Builds the `reqwest` client every outbound call goes through.
pub(crate) fn build_client(timeout: Duration) -> Result<reqwest::Client, IdpError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| IdpError::Config(format!("cannot build the HTTP client: {e}")))
}

/// The URL of a request without its query string, for error messages (a
/// query could carry something that should not end up in a log).
fn display_url(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_password(None);
    url.to_string()
}

/// An async HTTP client closure in the shape `openidconnect` expects
/// (`Fn(HttpRequest) -> impl Future<Output = Result<HttpResponse, E>>`).
pub(crate) fn client_fn(
    client: &reqwest::Client,
    timeout: Duration,
) -> impl Fn(HttpRequest) -> std::pin::Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send>> + use<>
{
    let client = client.clone();
    move |request: HttpRequest| {
        let client = client.clone();
        Box::pin(async move { send(&client, request, timeout).await })
    }
}

async fn send(
    client: &reqwest::Client,
    request: HttpRequest,
    timeout: Duration,
) -> Result<HttpResponse, TransportError> {
    let request = reqwest::Request::try_from(request)
        .map_err(|e| TransportError::Failed { url: "(invalid URL)".into(), reason: e.to_string() })?;
    let url = display_url(request.url());
    let fail = |e: reqwest::Error| {
        if e.is_timeout() {
            TransportError::Timeout { url: url.clone(), timeout }
        } else {
            TransportError::Failed { url: url.clone(), reason: e.without_url().to_string() }
        }
    };
    let mut response = client.execute(request).await.map_err(fail)?;
    let mut builder = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(fail)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(TransportError::Failed {
                url: url.clone(),
                reason: format!("the response is larger than {MAX_BODY} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    builder.body(body).map_err(|e| TransportError::Failed { url: url.clone(), reason: e.to_string() })
}
