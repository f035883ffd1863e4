//! One federated login, done the way an application and a browser do it: the
//! authorization request at jit, the redirects through the external IdP and
//! back to jit's callback, then the application's token request.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jit_testkit::authorize::AuthorizationRequest;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;
use url::Url;

/// Most redirects one login may take (jit → IdP → jit → application is three).
const MAX_REDIRECTS: usize = 10;

/// Where the logins go: jit, the application registered there and the connection to use.
#[derive(Clone, Debug)]
pub struct Target {
    /// jit's base URL, `http://127.0.0.1:<port>`.
    pub jit_url: String,
    /// The application's client id.
    pub client_id: String,
    /// The application's client secret.
    pub client_secret: String,
    /// The application's registered redirect URI.
    pub redirect_uri: String,
    /// The connection to the external IdP (`fidp=`).
    pub connection: String,
}

/// Who a successful login signed in, as the application's ID token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedIn {
    /// jit's user id (`sub`).
    pub subject: String,
    /// The user's email.
    pub email: String,
}

/// The HTTP client all logins share: no automatic redirects, no cookie store (each login
/// keeps its own cookies), connections kept alive like a browser's.
pub fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")
}

/// One complete login with a fresh cookie jar. Fails on anything but an ID token for this
/// login's nonce.
pub async fn login(client: &reqwest::Client, target: &Target, subject: &str) -> Result<SignedIn> {
    let request = AuthorizationRequest::new(
        &target.jit_url,
        &target.client_id,
        &target.redirect_uri,
        "openid email profile",
        Some(&target.connection),
    );
    let AuthorizationRequest { url, state, nonce, verifier } = request;
    let url = Url::parse(&url).context("the authorization URL")?;

    let callback = follow_to_application(client, target, url, subject).await?;
    let param = |name: &str| callback.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value.into_owned());
    if let Some(error) = param("error") {
        bail!("jit answered the application with {error}: {}", param("error_description").unwrap_or_default());
    }
    ensure!(param("state").as_deref() == Some(state.as_str()), "the state came back changed: {callback}");
    let code = param("code").with_context(|| format!("no code in {callback}"))?;

    let response = client
        .post(format!("{}/oauth2/token", target.jit_url))
        .basic_auth(&target.client_id, Some(&target.client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", target.redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .map_err(reqwest::Error::without_url)
        .context("POST /oauth2/token")?;
    let status = response.status();
    let body = response.text().await.context("reading the token response")?;
    ensure!(status.is_success(), "token endpoint answered {status}: {}", excerpt(&body));
    let tokens: Value = serde_json::from_str(&body).context("the token response is not JSON")?;
    let id_token = tokens["id_token"].as_str().context("the token response has no id_token")?;
    let claims = jwt_payload(id_token)?;
    ensure!(claims["nonce"].as_str() == Some(nonce.as_str()), "the ID token's nonce is not this login's");
    let subject = claims["sub"].as_str().context("the ID token has no sub")?.to_owned();
    let email = claims["email"].as_str().context("the ID token has no email")?.to_owned();
    Ok(SignedIn { subject, email })
}

/// Follows redirects from `url` until one points at the application's redirect URI, which
/// it returns. Keeps jit's and the IdP's cookies for this login only (a fresh browser), and
/// signs in as `subject` at an IdP that shows a login form (node `oidc-provider`).
async fn follow_to_application(client: &reqwest::Client, target: &Target, mut url: Url, subject: &str) -> Result<Url> {
    let jit = Url::parse(&target.jit_url).context("jit's URL")?;
    let (mut cookies, mut idp_cookies) = (CookieJar::default(), CookieJar::default());
    let mut form: Option<Vec<(&str, &str)>> = None;
    for _ in 0..MAX_REDIRECTS {
        let at_jit = url.origin() == jit.origin();
        let jar = if at_jit { &mut cookies } else { &mut idp_cookies };
        let mut request = match form.take() {
            Some(fields) => client.post(url.clone()).form(&fields),
            None => client.get(url.clone()),
        };
        if let Some(header) = jar.header() {
            request = request.header(COOKIE, header);
        }
        let response = request
            .send()
            .await
            .map_err(reqwest::Error::without_url)
            .with_context(|| format!("GET {}", without_query(&url)))?;
        for value in response.headers().get_all(SET_COOKIE) {
            jar.store(value.to_str().unwrap_or_default());
        }
        let status = response.status();
        if !status.is_redirection() {
            let body = response.text().await.unwrap_or_default();
            // The IdP's login page: submit its form as the user would.
            if !at_jit
                && status.is_success()
                && let Some(action) = login_form_action(&body)
            {
                url = url.join(&action).with_context(|| format!("bad form action {action:?}"))?;
                form = Some(vec![("login", subject), ("password", "irrelevant")]);
                continue;
            }
            bail!("{} answered {status} instead of a redirect: {}", without_query(&url), excerpt(&body));
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .with_context(|| format!("{} redirected without a Location", without_query(&url)))?;
        let next = url.join(location).with_context(|| format!("bad Location {location:?}"))?;
        if next.as_str().starts_with(&target.redirect_uri) {
            return Ok(next);
        }
        url = next;
    }
    bail!("more than {MAX_REDIRECTS} redirects, the last to {}", without_query(&url))
}

/// The `action` of a page's login form (`.../login`), if it has one.
fn login_form_action(html: &str) -> Option<String> {
    html.match_indices("action=\"").find_map(|(at, _)| {
        let rest = &html[at + 8..];
        let action = &rest[..rest.find('"')?];
        action.ends_with("/login").then(|| action.replace("&amp;", "&"))
    })
}

/// Cookies of one login at one site: name → value; attributes are ignored.
#[derive(Debug, Default)]
pub struct CookieJar {
    cookies: Vec<(String, String)>,
}

impl CookieJar {
    /// Keeps the cookie of a `Set-Cookie` header value; an empty value or `Max-Age=0`
    /// removes it.
    pub fn store(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else { return };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return;
        }
        let expired = parts.any(|attribute| {
            attribute.split_once('=').is_some_and(|(key, v)| {
                key.trim().eq_ignore_ascii_case("max-age") && v.trim().parse::<i64>().is_ok_and(|age| age <= 0)
            })
        });
        self.cookies.retain(|(existing, _)| existing != name);
        if !expired && !value.is_empty() {
            self.cookies.push((name.to_owned(), value.to_owned()));
        }
    }

    /// The `Cookie` header to send, if there is any cookie.
    pub fn header(&self) -> Option<String> {
        (!self.cookies.is_empty())
            .then(|| self.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; "))
    }
}

/// The claims of a JWT, unverified (jit's signature is not what is measured here).
pub fn jwt_payload(jwt: &str) -> Result<Value> {
    let payload = jwt.split('.').nth(1).context("the ID token is not a JWT")?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).context("the ID token's payload is not base64url")?;
    serde_json::from_slice(&bytes).context("the ID token's payload is not JSON")
}

/// 32 random hexadecimal characters.
/// A URL without its query (which holds codes and states).
fn without_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// The start of a response body, on one line.
fn excerpt(body: &str) -> String {
    let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jar_keeps_replaces_and_removes_cookies() {
        let mut jar = CookieJar::default();
        assert_eq!(jar.header(), None);
        jar.store("jit_flow=abc; HttpOnly; SameSite=Lax; Path=/");
        jar.store("other=1");
        assert_eq!(jar.header().as_deref(), Some("jit_flow=abc; other=1"));
        jar.store("jit_flow=def; Path=/");
        assert_eq!(jar.header().as_deref(), Some("other=1; jit_flow=def"));
        jar.store("jit_flow=; Max-Age=0; Path=/");
        jar.store("other=1; max-age=0");
        assert_eq!(jar.header(), None);
        jar.store("garbage");
        assert_eq!(jar.header(), None);
    }

    #[test]
    fn reads_a_jwt_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"u1","nonce":"n"}"#);
        let claims = jwt_payload(&format!("e30.{payload}.c2ln")).unwrap();
        assert_eq!(claims["sub"], "u1");
        assert!(jwt_payload("not-a-jwt").is_err());
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt("a\n  b"), "a b");
        assert_eq!(excerpt(&"x".repeat(500)).chars().count(), 201);
    }
}
