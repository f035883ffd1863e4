//! The admin console's own application. The console is an OpenID client of
//! the jit that serves it: administrators sign in through jit's own
//! sign-in, with the flow of this application. It is visible and editable
//! like any other application, but a change that would let nobody sign in
//! to the console is refused, with the reason, and it cannot be deleted.

use crate::application::{Application, RedirectUri};
use crate::error::ConfigError;
use crate::flow::{SignInFlow, StepOption};

/// The console's client id.
pub const CONSOLE_CLIENT_ID: &str = "jit-console";
/// Its name as first registered.
pub const CONSOLE_APPLICATION_NAME: &str = "jit console";
/// Where jit's sign-in sends administrators back to, under the public URL.
pub const CONSOLE_CALLBACK_PATH: &str = "/console/callback";

/// Whether `client_id` is the console's.
pub fn is_console(client_id: &str) -> bool {
    client_id == CONSOLE_CLIENT_ID
}

/// The console's callback URL under `public_url` (no trailing slash).
pub fn console_redirect_uri(public_url: &str) -> Result<RedirectUri, ConfigError> {
    RedirectUri::parse(&format!("{}{CONSOLE_CALLBACK_PATH}", public_url.trim_end_matches('/'))).map_err(|error| {
        ConfigError::ConsoleLockout(format!(
            "the console signs in at {public_url}{CONSOLE_CALLBACK_PATH}, which cannot be a redirect URI ({error}): \
             serve jit at an https public URL, or at a loopback one"
        ))
    })
}

/// The console's application as first registered: a public client (the
/// console exchanges its codes with PKCE, inside jit), calling back to the
/// console, signing in with the local password.
pub fn console_application(public_url: &str) -> Result<Application, ConfigError> {
    Ok(Application {
        name: CONSOLE_APPLICATION_NAME.to_owned(),
        client_id: CONSOLE_CLIENT_ID.to_owned(),
        client_secret_hash: None,
        redirect_uris: vec![console_redirect_uri(public_url)?],
        public: true,
        sign_in: SignInFlow::default(),
        scopes: Vec::new(),
    })
}

/// Checks a change to the console's application (others pass unchecked):
/// it must stay a public client calling back to the console at
/// `public_url`, and its first step must keep the local password, so that
/// the administrators `jit admin create-user` makes can always sign in.
pub fn check_console_application(application: &Application, public_url: &str) -> Result<(), ConfigError> {
    if !is_console(&application.client_id) {
        return Ok(());
    }
    let lockout = |why: &str| Err(ConfigError::ConsoleLockout(format!("this is the console's own application: {why}")));
    let callback = console_redirect_uri(public_url)?;
    if !application.redirect_uris.contains(&callback) {
        return lockout(&format!(
            "its redirect URIs must keep {callback}, where administrators come back to the console after signing in"
        ));
    }
    if !application.public {
        return lockout("it must stay a public client; the console exchanges its codes with PKCE, without a secret");
    }
    if !first_step_offers_local(&application.sign_in) {
        return lockout(
            "step 1 of its sign-in flow must keep LOCAL (username and password), so that local administrators can \
             always sign in; add connections or MFA beside it",
        );
    }
    Ok(())
}

/// Deleting an application: refused for the console's.
pub fn check_console_deletion(client_id: &str) -> Result<(), ConfigError> {
    if is_console(client_id) {
        return Err(ConfigError::ConsoleLockout(
            "this is the console's own application: administrators sign in to the console through it, so it cannot be \
             deleted"
                .to_owned(),
        ));
    }
    Ok(())
}

fn first_step_offers_local(flow: &SignInFlow) -> bool {
    flow.steps.first().is_some_and(|step| step.options.contains(&StepOption::Local))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Step;

    const URL: &str = "http://127.0.0.1:8080";

    #[test]
    fn the_console_application_passes_its_own_rules() {
        let console = console_application(URL).unwrap();
        assert_eq!(console.redirect_uris[0].as_str(), "http://127.0.0.1:8080/console/callback");
        assert_eq!(check_console_application(&console, URL), Ok(()));
        assert!(console_application("http://jit.internal").is_err(), "plain http off loopback cannot be a redirect");
    }

    #[test]
    fn changes_that_lock_administrators_out_are_refused() {
        let console = console_application(URL).unwrap();
        let without_callback =
            Application { redirect_uris: vec![RedirectUri::parse("http://127.0.0.1/x").unwrap()], ..console.clone() };
        let confidential = Application { public: false, ..console.clone() };
        let mut no_password = console.clone();
        no_password.sign_in.steps = vec![Step { options: vec![StepOption::Totp] }];
        for changed in [without_callback, confidential, no_password] {
            assert!(matches!(check_console_application(&changed, URL), Err(ConfigError::ConsoleLockout(_))));
        }
        let mut with_mfa = console.clone();
        with_mfa.sign_in.steps.push(Step { options: vec![StepOption::Totp] });
        assert_eq!(check_console_application(&with_mfa, URL), Ok(()), "MFA after the password is fine");
        let other = Application { client_id: "someone-else".into(), public: false, ..console };
        assert_eq!(check_console_application(&other, URL), Ok(()), "other applications are not the console");
        assert!(check_console_deletion(CONSOLE_CLIENT_ID).is_err());
        assert!(check_console_deletion("someone-else").is_ok());
    }
}
