//! An application's sign-in flow: ordered steps, each offering options, and
//! an optional conditional authentication script; and its validation.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::connection::ConnectionName;
use crate::error::ConfigError;

/// Most steps a flow may have.
pub const MAX_STEPS: usize = 10;

/// The script that skips MFA for users who did not use the local
/// authenticator (from the seeds), suggested with the JIT/MFA warning.
pub const SKIP_MFA_FOR_FEDERATED_SCRIPT: &str = "var localAuthenticator = 'LOCAL';
var onLoginRequest = function (context) {
    executeStep(1, {
        onSuccess: function (context) {
            var step = context.steps[1];
            if (step.idp == localAuthenticator) {
                executeStep(2); // MFA Step
            }
        }
    });
};";

/// One way to complete a step.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StepOption {
    /// Local username and password (`LOCAL`).
    Local,
    /// A time-based one-time password (`TOTP`).
    Totp,
    /// A one-time code sent by email (`EMAIL_OTP`).
    EmailOtp,
    /// A federated connection, by name.
    Connection(ConnectionName),
}

impl StepOption {
    /// Whether the option acts on a local account that an earlier step
    /// identified (TOTP secret, email address).
    pub fn needs_local_account(&self) -> bool {
        matches!(self, Self::Totp | Self::EmailOtp)
    }

    /// Whether the option identifies the user.
    pub fn identifies_user(&self) -> bool {
        matches!(self, Self::Local | Self::Connection(_))
    }
}

impl TryFrom<String> for StepOption {
    type Error = ConfigError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Ok(match value.as_str() {
            "LOCAL" => Self::Local,
            "TOTP" => Self::Totp,
            "EMAIL_OTP" => Self::EmailOtp,
            _ => Self::Connection(ConnectionName::new(value)?),
        })
    }
}

impl From<StepOption> for String {
    fn from(value: StepOption) -> Self {
        value.to_string()
    }
}

impl fmt::Display for StepOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("LOCAL"),
            Self::Totp => f.write_str("TOTP"),
            Self::EmailOtp => f.write_str("EMAIL_OTP"),
            Self::Connection(name) => f.write_str(name.as_str()),
        }
    }
}

/// A step: the user completes one of its options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Step {
    /// The options offered: `LOCAL`, `TOTP`, `EMAIL_OTP` or a connection name.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub options: Vec<StepOption>,
}

/// An application's sign-in flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignInFlow {
    /// The steps, in order (step 1 first).
    pub steps: Vec<Step>,
    /// A conditional authentication script deciding which steps run.
    #[serde(default)]
    pub script: Option<String>,
}

impl Default for SignInFlow {
    fn default() -> Self {
        Self { steps: vec![Step { options: vec![StepOption::Local] }], script: None }
    }
}

/// A flow that cannot run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignInFlowError {
    /// No steps.
    #[error("a sign-in flow needs at least one step")]
    NoSteps,
    /// Too many steps.
    #[error("a sign-in flow has at most {MAX_STEPS} steps")]
    TooManySteps,
    /// A step with nothing to choose.
    #[error("step {0} has no options")]
    EmptyStep(usize),
    /// The same option twice in a step.
    #[error("step {step} offers {option} twice")]
    DuplicateOption {
        /// The step (1-based).
        step: usize,
        /// The option.
        option: StepOption,
    },
    /// A connection that does not exist.
    #[error("step {step} names connection {connection:?}, which does not exist")]
    UnknownConnection {
        /// The step (1-based).
        step: usize,
        /// The name.
        connection: ConnectionName,
    },
    /// An MFA option before any step has identified the user.
    #[error(
        "step {step} offers {option}, which needs a user identified by an earlier step: put LOCAL or a connection in step 1"
    )]
    MfaBeforeIdentification {
        /// The step (1-based).
        step: usize,
        /// The option.
        option: StepOption,
    },
}

/// Something that works but may surprise: the API returns these with the
/// application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FlowWarning {
    /// A step needing a local account follows a step offering a connection
    /// whose JIT provisioning is off: users of that connection have no local
    /// account and their sign-in will fail at that step.
    MfaWithJitDisabledConnection {
        /// The step offering the connection (1-based).
        connection_step: usize,
        /// The connection.
        connection: ConnectionName,
        /// The step needing a local account (1-based).
        mfa_step: usize,
        /// The option needing it.
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        option: StepOption,
        /// What to show an administrator.
        message: String,
        /// A script that avoids the failure.
        suggested_script: String,
    },
}

/// What validation needs to know about a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionFacts {
    /// Whether JIT provisioning is on.
    pub jit_enabled: bool,
}

impl SignInFlow {
    /// Checks the flow. `connection` tells what is known of a connection by
    /// name (`None`: it does not exist). Returns the warnings of a flow that
    /// can run.
    ///
    /// The JIT/MFA warning is given when no script is set; with a script the
    /// administrator has taken control of which steps run.
    pub fn validate(
        &self,
        connection: impl Fn(&ConnectionName) -> Option<ConnectionFacts>,
    ) -> Result<Vec<FlowWarning>, SignInFlowError> {
        if self.steps.is_empty() {
            return Err(SignInFlowError::NoSteps);
        }
        if self.steps.len() > MAX_STEPS {
            return Err(SignInFlowError::TooManySteps);
        }
        let mut warnings = Vec::new();
        let mut jit_disabled: Vec<(usize, ConnectionName)> = Vec::new();
        let mut identified = false;
        for (index, step) in self.steps.iter().enumerate() {
            let number = index + 1;
            if step.options.is_empty() {
                return Err(SignInFlowError::EmptyStep(number));
            }
            let mut seen = BTreeSet::new();
            for option in &step.options {
                if !seen.insert(option) {
                    return Err(SignInFlowError::DuplicateOption { step: number, option: option.clone() });
                }
                if option.needs_local_account() && !identified {
                    return Err(SignInFlowError::MfaBeforeIdentification { step: number, option: option.clone() });
                }
            }
            for option in step.options.iter().filter(|o| o.needs_local_account()) {
                if self.script.is_some() {
                    break;
                }
                warnings.extend(
                    jit_disabled
                        .iter()
                        .map(|(connection_step, name)| mfa_warning(*connection_step, name, number, option)),
                );
            }
            for option in &step.options {
                if let StepOption::Connection(name) = option {
                    let facts = connection(name)
                        .ok_or_else(|| SignInFlowError::UnknownConnection { step: number, connection: name.clone() })?;
                    if !facts.jit_enabled {
                        jit_disabled.push((number, name.clone()));
                    }
                }
            }
            identified |= step.options.iter().any(StepOption::identifies_user);
        }
        Ok(warnings)
    }
}

impl SignInFlow {
    /// The connections (each once, in flow order) whose users have no local
    /// account, because JIT provisioning is off, and would meet a step that
    /// needs one: what [`FlowWarning::MfaWithJitDisabledConnection`] names,
    /// computed as if no script were set (with one, the script decides
    /// which steps run). Empty for a flow that cannot run.
    pub fn jit_disabled_before_mfa(
        &self,
        connection: impl Fn(&ConnectionName) -> Option<ConnectionFacts>,
    ) -> Vec<ConnectionName> {
        let unscripted = SignInFlow { steps: self.steps.clone(), script: None };
        let mut names: Vec<ConnectionName> = Vec::new();
        for warning in unscripted.validate(connection).unwrap_or_default() {
            let FlowWarning::MfaWithJitDisabledConnection { connection, .. } = warning;
            if !names.contains(&connection) {
                names.push(connection);
            }
        }
        names
    }
}

fn mfa_warning(
    connection_step: usize,
    connection: &ConnectionName,
    mfa_step: usize,
    option: &StepOption,
) -> FlowWarning {
    FlowWarning::MfaWithJitDisabledConnection {
        connection_step,
        connection: connection.clone(),
        mfa_step,
        option: option.clone(),
        message: format!(
            "Step {mfa_step} uses {option}, which needs a local account, but connection {connection:?} in step \
             {connection_step} has Just-in-Time provisioning disabled: its users have no local account and their \
             sign-in will fail at step {mfa_step}. Enable JIT provisioning on the connection, or add a conditional \
             authentication script that skips step {mfa_step} for them."
        ),
        suggested_script: SKIP_MFA_FOR_FEDERATED_SCRIPT.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(steps: &[&[&str]], script: Option<&str>) -> SignInFlow {
        let steps = steps
            .iter()
            .map(|options| Step {
                options: options.iter().map(|o| StepOption::try_from((*o).to_owned()).unwrap()).collect(),
            })
            .collect();
        SignInFlow { steps, script: script.map(str::to_owned) }
    }

    fn facts(name: &ConnectionName) -> Option<ConnectionFacts> {
        match name.as_str() {
            "corp" => Some(ConnectionFacts { jit_enabled: true }),
            "partner" => Some(ConnectionFacts { jit_enabled: false }),
            _ => None,
        }
    }

    fn check(steps: &[&[&str]], script: Option<&str>) -> Result<usize, String> {
        flow(steps, script).validate(facts).map(|w| w.len()).map_err(|e| e.to_string())
    }

    #[test]
    fn valid_flows_without_warnings() {
        assert_eq!(check(&[&["LOCAL"]], None), Ok(0));
        assert_eq!(check(&[&["LOCAL", "corp"], &["TOTP", "EMAIL_OTP"]], None), Ok(0));
        assert_eq!(check(&[&["partner"]], None), Ok(0));
    }

    #[test]
    fn seed_warning_mfa_after_jit_disabled_connection() {
        // "When configuring an application's sign-in flow involving JIT-disabled
        // IdPs and such MFA options, [the server] displays the following warning"
        let warnings = flow(&[&["LOCAL", "partner"], &["TOTP"]], None).validate(facts).unwrap();
        let [FlowWarning::MfaWithJitDisabledConnection { connection, mfa_step, suggested_script, .. }] =
            warnings.as_slice()
        else {
            panic!("expected one warning, got {warnings:?}")
        };
        assert_eq!(connection.as_str(), "partner");
        assert_eq!(*mfa_step, 2);
        assert_eq!(suggested_script, SKIP_MFA_FOR_FEDERATED_SCRIPT);
        assert_eq!(check(&[&["LOCAL", "partner"], &["TOTP", "EMAIL_OTP"]], None), Ok(2));
    }

    #[test]
    fn a_script_takes_over_the_warning() {
        assert_eq!(check(&[&["LOCAL", "partner"], &["TOTP"]], Some(SKIP_MFA_FOR_FEDERATED_SCRIPT)), Ok(0));
        // What the script now decides is still known, once per connection.
        let scripted = flow(&[&["LOCAL", "partner"], &["TOTP", "EMAIL_OTP"]], Some(SKIP_MFA_FOR_FEDERATED_SCRIPT));
        let names: Vec<_> =
            scripted.jit_disabled_before_mfa(facts).into_iter().map(|n| n.as_str().to_owned()).collect();
        assert_eq!(names, ["partner"]);
        assert!(flow(&[&["LOCAL", "corp"], &["TOTP"]], None).jit_disabled_before_mfa(facts).is_empty());
    }

    #[test]
    fn invalid_flows() {
        assert!(check(&[], None).is_err_and(|e| e.contains("at least one step")));
        assert!(check(&[&[]], None).is_err_and(|e| e.contains("no options")));
        assert!(check(&[&["TOTP"]], None).is_err_and(|e| e.contains("identified by an earlier step")));
        assert!(check(&[&["LOCAL", "LOCAL"]], None).is_err_and(|e| e.contains("twice")));
        assert!(check(&[&["ghost"]], None).is_err_and(|e| e.contains("does not exist")));
        let local: &[&str] = &["LOCAL"];
        assert!(check(&[local; 11], None).is_err());
    }

    #[test]
    fn options_serialize_as_the_api_names() {
        let step: Step = serde_json::from_str(r#"{"options":["LOCAL","corp","TOTP","EMAIL_OTP"]}"#).unwrap();
        assert_eq!(step.options[1], StepOption::Connection(ConnectionName::new("corp").unwrap()));
        assert_eq!(serde_json::to_string(&step).unwrap(), r#"{"options":["LOCAL","corp","TOTP","EMAIL_OTP"]}"#);
        assert!(serde_json::from_str::<Step>(r#"{"options":["Bad Name"]}"#).is_err());
    }
}
