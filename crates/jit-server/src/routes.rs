//! Every path jit serves, once: the router, the redirects between pages,
//! and discovery all name them from here.

/// OpenID provider metadata.
pub const DISCOVERY: &str = "/.well-known/openid-configuration";
/// Our public keys.
pub const JWKS: &str = "/oauth2/jwks";
/// Where applications send browsers.
pub const AUTHORIZE: &str = "/oauth2/authorize";
/// Where applications exchange codes.
pub const TOKEN: &str = "/oauth2/token";
/// Where applications read claims with an access token.
pub const USERINFO: &str = "/oauth2/userinfo";
/// An IdP's answer (`{connection}` is the connection's name).
pub const FEDERATION_CALLBACK: &str = jit_flow::idps::CALLBACK_ROUTE;
/// The current step of a sign-in.
pub const SIGN_IN: &str = "/signin";
/// The local password form.
pub const SIGN_IN_PASSWORD: &str = "/signin/password";
/// "Continue with" a connection.
pub const SIGN_IN_FEDERATED: &str = "/signin/federated";
/// A TOTP code.
pub const SIGN_IN_TOTP: &str = "/signin/totp";
/// "Send me a code".
pub const SIGN_IN_EMAIL_OTP_SEND: &str = "/signin/email-otp/send";
/// An email code.
pub const SIGN_IN_EMAIL_OTP: &str = "/signin/email-otp";
/// Liveness.
pub const HEALTH_LIVE: &str = "/healthz";
/// Readiness.
pub const HEALTH_READY: &str = "/readyz";
/// The admin API's prefix.
pub const API: &str = "/api/v1";
/// The admin console (its pages are under this prefix).
pub const CONSOLE: &str = "/console";
/// The console's sign-in page.
pub const CONSOLE_LOGIN: &str = "/console/login";
/// Starts a console sign-in through jit's own sign-in.
pub const CONSOLE_LOGIN_START: &str = "/console/login/start";
/// Where jit's sign-in sends administrators back (the console's redirect URI).
pub const CONSOLE_CALLBACK: &str = jit_domain::console::CONSOLE_CALLBACK_PATH;
/// Ends a console session.
pub const CONSOLE_LOGOUT: &str = "/console/logout";
/// The one-time setup link that creates the first administrator.
pub const CONSOLE_SETUP: &str = "/console/setup";
/// The console's stylesheet and script.
pub const CONSOLE_ASSET: &str = "/console/assets/{file}";
/// Prometheus metrics (admin token).
pub const METRICS: &str = "/metrics";
