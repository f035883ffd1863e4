//! The second-factor steps: TOTP (verification and enrolment during the
//! sign-in) and Email OTP. Both act on the local account an earlier step
//! identified; `enter_step` has already refused users without one.

use jit_domain::flow::{Step, StepOption};
use jit_domain::mfa::TotpSecret;
use jit_domain::ports::StoreError;
use jit_domain::schema::EMAIL;
use jit_domain::user::{LocalUser, UserId};
use time::OffsetDateTime;

use super::{EmailOtpView, EngineStore, Next, SignInEngine, TotpView, current_step};
use crate::error::SignInError;
use crate::factors::email_otp::{EmailOtpChallenge, EmailOtpError};
use crate::factors::mailer::{CodeMail, human_duration, mask_address};
use crate::factors::totp;
use jit_provider::SignedInSubject;

use crate::state::{EmailCode, SignInState};

impl<S: EngineStore + ?Sized> SignInEngine<S> {
    /// Checks a TOTP code: the confirmation of an enrolment started in this
    /// step, or a code of the user's saved secret.
    pub async fn totp(&self, flow_id: &str, csrf: &str, code: &str) -> Result<Next, SignInError> {
        let mut state = self.load_checked(flow_id, csrf).await?;
        let application = self.application(&state).await?;
        let user = self.mfa_user(&state, current_step(&application, &state)?, &StepOption::Totp)?;
        let now = self.clock.now();
        if let Some(secret) = state.step_state.totp_enrolment().cloned() {
            self.count_attempt(flow_id, &mut state).await?;
            let Some(used_step) = totp::verify(&secret, code, now) else {
                let message = "That code is not right. Check that the app shows this account and that the device's clock is right, then enter the current code.";
                return self.fail_step(flow_id, &application, state, StepOption::Totp, message).await;
            };
            state.failures = state.failures.saturating_sub(1);
            state.step_state.with_second_factors(|factors| factors.totp_enrolment = None);
            match self.store.enrol_totp(user, &secret, used_step, now).await {
                Ok(()) => {}
                Err(StoreError::Taken(_)) => {
                    // Another window enrolled first, with another secret:
                    // this code proves nothing about that one.
                    self.save(flow_id, &mut state).await?;
                    let notice = "Your authenticator was set up in another window. Enter a code from that one.";
                    return Ok(Next::Show(self.view_of(&application, &state, None, Some(notice.to_owned())).await?));
                }
                Err(other) => return Err(other.into()),
            }
            tracing::info!(event = "totp_enrolled", user = %user.0, "TOTP enrolled during sign-in");
            self.complete_step(&mut state, StepOption::Totp, SignedInSubject::Local { user })?;
            return self.advance(flow_id, &application, state).await;
        }
        let Some(record) = self.store.totp(user).await? else {
            // Reset by an administrator meanwhile: enrol instead.
            self.prepare_totp(&mut state, user).await?;
            self.save(flow_id, &mut state).await?;
            let notice = "Your authenticator was reset. Set it up again to continue.".to_owned();
            return Ok(Next::Show(self.view_of(&application, &state, None, Some(notice)).await?));
        };
        // Count the attempt before checking it, in the sign-in and on the
        // account: of a burst of guesses, those past the lockout threshold
        // are refused unchecked, however many arrive at once. A right code
        // clears the count.
        self.count_attempt(flow_id, &mut state).await?;
        let attempt = self.store.record_totp_attempt(user, now, &self.settings.totp_lockout).await?;
        if !attempt.allowed {
            let until = attempt.lock.locked_until.unwrap_or(now);
            tracing::info!(event = "totp_locked", user = %user.0, failures = attempt.lock.failures, "TOTP locked");
            return self.fail_step(flow_id, &application, state, StepOption::Totp, &locked_message(until)).await;
        }
        let accepted = match totp::verify(&record.secret, code, now) {
            Some(matched) => self.store.accept_totp_step(user, matched, now).await?,
            None => false,
        };
        if accepted {
            state.failures = state.failures.saturating_sub(1);
            self.complete_step(&mut state, StepOption::Totp, SignedInSubject::Local { user })?;
            return self.advance(flow_id, &application, state).await;
        }
        tracing::info!(event = "totp_failed", user = %user.0, failures = attempt.lock.failures, "wrong or reused TOTP code");
        let message = "That code is not right, or it was already used. Enter the next code your app shows.";
        self.fail_step(flow_id, &application, state, StepOption::Totp, message).await
    }

    /// Sends an email code to the user's address, or a new one.
    pub async fn send_email_otp(&self, flow_id: &str, csrf: &str) -> Result<Next, SignInError> {
        let mut state = self.load_checked(flow_id, csrf).await?;
        let application = self.application(&state).await?;
        let user = self.mfa_user(&state, current_step(&application, &state)?, &StepOption::EmailOtp)?;
        let address = self.email_address(user).await?.ok_or(SignInError::NoEmailAddress)?;
        let now = self.clock.now();
        let policy = &self.settings.email_otp;
        // Kept only if the code goes out: every refusal below returns
        // without saving.
        let issued = state.step_state.with_second_factors(|factors| match &mut factors.email_code {
            Some(sent) => {
                sent.sent_to = address.clone();
                sent.challenge.resend(now, policy)
            }
            None => EmailOtpChallenge::issue(now, policy).map(|(challenge, code)| {
                factors.email_code = Some(EmailCode { challenge, sent_to: address.clone() });
                code
            }),
        });
        let code = match issued {
            Ok(code) => code,
            Err(refused) => {
                let view = self.view_of(&application, &state, Some(email_otp_message(&refused, now)), None).await?;
                return Ok(Next::Show(view));
            }
        };
        // The account's own limit, across sign-ins: starting new sign-ins
        // does not buy more mail.
        let send = self.store.record_email_otp_send(user, now, &policy.account_sends).await?;
        if !send.allowed {
            tracing::info!(event = "email_otp_send_limited", user = %user.0, sends = send.lock.failures, "email code not sent");
            let until = send.lock.locked_until.unwrap_or(now);
            let message = format!(
                "Too many codes were sent to this account recently. You can ask for another in {}.",
                human_duration((until - now).max(time::Duration::seconds(1)))
            );
            return Ok(Next::Show(self.view_of(&application, &state, Some(message), None).await?));
        }
        // Saved before it is sent: a code that was mailed is always one the
        // sign-in knows (and a concurrent send loses here, unsent).
        self.save(flow_id, &mut state).await?;
        let mail = CodeMail {
            product: self.settings.totp_issuer.clone(),
            application: Some(application.name.clone()),
            valid_for: policy.lifetime,
        };
        self.mailer.send_code(&address, code.as_str(), &mail).await.map_err(|e| SignInError::Mail(e.to_string()))?;
        tracing::info!(event = "email_otp_sent", user = %user.0, to = %mask_address(&address), "email code sent");
        let notice = format!(
            "We sent a code to {}. It is valid for {}.",
            mask_address(&address),
            human_duration(policy.lifetime)
        );
        Ok(Next::Show(self.view_of(&application, &state, None, Some(notice)).await?))
    }

    /// Checks an email code.
    pub async fn email_otp(&self, flow_id: &str, csrf: &str, code: &str) -> Result<Next, SignInError> {
        let mut state = self.load_checked(flow_id, csrf).await?;
        let application = self.application(&state).await?;
        let user = self.mfa_user(&state, current_step(&application, &state)?, &StepOption::EmailOtp)?;
        let now = self.clock.now();
        let Some(sent) = state.step_state.email_code_mut() else {
            let view = self.view_of(&application, &state, Some("Ask for a code first.".into()), None).await?;
            return Ok(Next::Show(view));
        };
        // The try is counted and stored (compare-and-swap) before the code
        // is compared: parallel guesses against one loaded state lose the
        // swap unchecked, and the right code completes the step only from
        // the state its own try was counted in.
        let counted = sent.challenge.count_attempt(now);
        if let Err(refused) = counted {
            let view = self.view_of(&application, &state, Some(email_otp_message(&refused, now)), None).await?;
            return Ok(Next::Show(view));
        }
        self.count_attempt(flow_id, &mut state).await?;
        let checked = match state.step_state.email_code_mut() {
            Some(sent) => sent.challenge.check(code, &self.settings.email_otp.code_key),
            None => Err(EmailOtpError::AlreadyUsed),
        };
        match checked {
            Ok(()) => {
                // The user read the code at their address: it is verified
                // (unless it changed since, or another account holds it).
                // The address the code went to, if it is still the account's.
                let sent_to = state.step_state.email_code().map(|sent| sent.sent_to.clone());
                if let Some(address) = sent_to
                    && self.store.verify_email(user, &address).await?
                {
                    tracing::info!(event = "email_verified", user = %user.0, "email verified by Email OTP");
                }
                self.store.clear_email_otp_sends(user).await?;
                state.failures = state.failures.saturating_sub(1);
                self.complete_step(&mut state, StepOption::EmailOtp, SignedInSubject::Local { user })?;
                self.advance(flow_id, &application, state).await
            }
            Err(refused) => {
                tracing::info!(event = "email_otp_failed", user = %user.0, reason = %refused, "email code refused");
                let message = email_otp_message(&refused, now);
                self.fail_step(flow_id, &application, state, StepOption::EmailOtp, &message).await
            }
        }
    }

    /// Creates the secret a user without TOTP enrols with in this step
    /// (kept in the sign-in until the user confirms it).
    pub(super) async fn prepare_totp(&self, state: &mut SignInState, user: UserId) -> Result<(), SignInError> {
        let enrolling = state.step_state.totp_enrolment().is_some();
        if enrolling || self.store.totp(user).await?.is_some() {
            return Ok(());
        }
        let secret = totp::generate_secret()?;
        state.step_state.with_second_factors(|factors| factors.totp_enrolment = Some(secret));
        Ok(())
    }

    /// What the step page shows of TOTP and Email OTP for this user.
    pub(super) async fn mfa_views(
        &self,
        step: &Step,
        state: &SignInState,
    ) -> Result<(Option<TotpView>, Option<EmailOtpView>), SignInError> {
        let Some(SignedInSubject::Local { user }) = &state.subject else { return Ok((None, None)) };
        let totp_view = if step.options.contains(&StepOption::Totp) {
            Some(match state.step_state.totp_enrolment() {
                Some(secret) => {
                    let account = self.local_user(*user).await?.username.as_str().to_owned();
                    enrol_view(secret, &self.settings.totp_issuer, &account)?
                }
                None => TotpView::Verify,
            })
        } else {
            None
        };
        let email_view = if step.options.contains(&StepOption::EmailOtp) {
            self.email_address(*user).await?.map(|address| EmailOtpView {
                masked_address: mask_address(&address),
                sent: state.step_state.email_code().is_some(),
            })
        } else {
            None
        };
        Ok((totp_view, email_view))
    }

    /// The local user a second-factor option acts on, if the step offers
    /// `option`.
    fn mfa_user(&self, state: &SignInState, step: &Step, option: &StepOption) -> Result<UserId, SignInError> {
        if !step.options.contains(option) {
            return Err(SignInError::NotOffered(option.to_string()));
        }
        match &state.subject {
            Some(SignedInSubject::Local { user }) => Ok(*user),
            Some(SignedInSubject::PassThrough { connection, .. }) => Err(SignInError::NeedsLocalAccount {
                step: state.step + 1,
                option: option.to_string(),
                connection: connection.to_string(),
            }),
            None => Err(SignInError::InvalidFlow(format!("{option} needs a user that an earlier step identified"))),
        }
    }

    async fn local_user(&self, user: UserId) -> Result<LocalUser, SignInError> {
        self.store.user(user).await?.ok_or(SignInError::Expired)
    }

    pub(super) async fn email_address(&self, user: UserId) -> Result<Option<String>, SignInError> {
        let user = self.local_user(user).await?;
        Ok(user.attributes.get(EMAIL).and_then(|v| v.values().first().cloned()).filter(|a| !a.trim().is_empty()))
    }
}

fn enrol_view(secret: &TotpSecret, issuer: &str, account: &str) -> Result<TotpView, SignInError> {
    let enrolment = totp::enrolment(secret, issuer, account)?;
    Ok(TotpView::Enrol { qr_data_url: enrolment.qr_data_url(), otpauth_uri: enrolment.uri.clone() })
}

fn locked_message(until: OffsetDateTime) -> String {
    let time = until.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| until.to_string());
    format!("Too many wrong codes: codes from your authenticator are refused until {time} (UTC). Try again then.")
}

fn email_otp_message(refused: &EmailOtpError, now: OffsetDateTime) -> String {
    match refused {
        EmailOtpError::Wrong { remaining } => {
            format!("That code is not right. {remaining} attempt(s) left for this code.")
        }
        EmailOtpError::Expired => "That code has expired. Ask for a new code.".into(),
        EmailOtpError::TooManyAttempts => "Too many wrong codes. Ask for a new code.".into(),
        EmailOtpError::AlreadyUsed => "That code was already used. Ask for a new code.".into(),
        EmailOtpError::TooSoon { retry_at } => format!(
            "A code was sent moments ago. You can ask for another in {}.",
            human_duration((*retry_at - now).max(time::Duration::seconds(1)))
        ),
        EmailOtpError::TooManyResends => "No more codes can be sent for this sign-in.".into(),
        other => other.to_string(),
    }
}
