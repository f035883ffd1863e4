//! Applications with a conditional authentication script: which step runs
//! next is the script's decision. No engine is kept between requests: each
//! decision runs the script afresh and replays the steps recorded in the
//! sign-in's state, so closures and `onSuccess`/`onFail` handlers work as if
//! the script had been waiting.

use jit_domain::application::Application;
use jit_domain::user::UserId;

use super::{EngineStore, SignInEngine};
use crate::error::SignInError;
use jit_domain::schema::USERNAME;
use jit_provider::SignedInSubject;
use jit_script::{CompletedStepRecord, ScriptDecision, ScriptInput, StepOutcome};

use crate::state::SignInState;

impl<S: EngineStore + ?Sized> SignInEngine<S> {
    /// Runs `script` over what happened so far: `Some(step)` (0-based) to do
    /// next, `None` when the script asks for nothing more.
    pub(super) async fn scripted_next_step(
        &self,
        application: &Application,
        script: &str,
        state: &SignInState,
    ) -> Result<Option<usize>, SignInError> {
        let input = self.script_input(application, state).await?;
        let runner = self.scripts.clone();
        let source = script.to_owned();
        // A decision may take up to the time budget of CPU: off the async
        // workers.
        let decided = tokio::task::spawn_blocking(move || runner.decide(&source, &input))
            .await
            .map_err(|e| SignInError::Internal(format!("the script evaluation did not finish: {e}")))?;
        match decided {
            Ok(ScriptDecision::Execute(step)) => Ok(Some(step - 1)),
            Ok(ScriptDecision::Complete) => Ok(None),
            Ok(ScriptDecision::Fail { message }) => {
                tracing::info!(
                    event = "script_failed_sign_in",
                    application = %application.name,
                    message = message.as_deref().unwrap_or(""),
                    "the application's script ended the sign-in"
                );
                Err(SignInError::ScriptFailed(message))
            }
            Err(error) => {
                tracing::warn!(
                    event = "script_error",
                    application = %application.name,
                    error = %error,
                    "the application's sign-in script failed"
                );
                Err(SignInError::Script(error))
            }
        }
    }

    async fn script_input(&self, application: &Application, state: &SignInState) -> Result<ScriptInput, SignInError> {
        let username = self.subject_username(state).await?;
        let completed = state
            .completed
            .iter()
            .map(|done| CompletedStepRecord {
                step: done.step,
                outcome: if done.succeeded { StepOutcome::Success } else { StepOutcome::Failure },
                idp: done.idp(),
                subject_username: if done.succeeded { username.clone() } else { None },
            })
            .collect();
        Ok(ScriptInput {
            steps_configured: application.sign_in.steps.len(),
            completed,
            request_params: state.authorization.request_params.clone(),
            known_subject_username: None,
        })
    }

    /// The username scripts see: the local account's, or for a user of a
    /// JIT-disabled connection the mapped `username` (else the IdP's
    /// subject).
    async fn subject_username(&self, state: &SignInState) -> Result<Option<String>, SignInError> {
        Ok(match &state.subject {
            None => None,
            Some(SignedInSubject::Local { user }) => self.username_of(*user).await?,
            Some(SignedInSubject::PassThrough { subject, attributes, .. }) => Some(
                attributes
                    .get(USERNAME)
                    .and_then(|v| v.values().first().cloned())
                    .unwrap_or_else(|| subject.as_str().to_owned()),
            ),
        })
    }

    async fn username_of(&self, user: UserId) -> Result<Option<String>, SignInError> {
        Ok(self.store.user(user).await?.map(|u| u.username.as_str().to_owned()))
    }
}
