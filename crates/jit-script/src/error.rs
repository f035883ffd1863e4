//! Why a conditional authentication script gave no decision. Every variant
//! ends the sign-in (fails closed); the messages are fit for the sign-in
//! page and for the admin API (a 400 when an application is saved).

/// A script that cannot be run, or that stopped without a decision.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScriptError {
    /// The script does not parse (the engine's message, with its line).
    #[error(
        "the conditional authentication script has a syntax error: {0}. Fix the script of the application's sign-in flow."
    )]
    Syntax(String),
    /// The script does not define `onLoginRequest(context)`.
    #[error(
        "the conditional authentication script does not define an onLoginRequest function; define `var onLoginRequest = function (context) {{ ... }};`"
    )]
    MissingEntryPoint,
    /// The script threw (the exception's message, with its line).
    #[error(
        "the conditional authentication script failed: {0}. The sign-in was stopped; the administrator must fix the script."
    )]
    Threw(String),
    /// The script ran longer than its time budget (an endless loop?).
    #[error(
        "the conditional authentication script ran longer than its time budget of {budget_ms} ms (an endless loop?) and was stopped; the administrator must fix the script."
    )]
    TimedOut {
        /// The budget, in milliseconds.
        budget_ms: u64,
    },
    /// The script used more memory than allowed.
    #[error(
        "the conditional authentication script used more than its memory limit of {limit_bytes} bytes and was stopped; the administrator must fix the script."
    )]
    OutOfMemory {
        /// The limit, in bytes.
        limit_bytes: usize,
    },
    /// The script recursed deeper than allowed.
    #[error(
        "the conditional authentication script recursed too deeply (stack overflow) and was stopped; the administrator must fix the script."
    )]
    StackOverflow,
    /// The script asked for a step that the sign-in flow does not have.
    #[error(
        "the conditional authentication script asked for step {step}, but the sign-in flow has {configured} step(s), numbered from 1; the administrator must fix the script or the flow."
    )]
    UnknownStep {
        /// The step asked for.
        step: i64,
        /// How many steps the flow has.
        configured: usize,
    },
    /// Re-running the script took another path than the steps already done
    /// in this sign-in (scripts must decide the same way every time they run).
    #[error(
        "the conditional authentication script took a different path than earlier in this sign-in ({0}); a script must decide the same way each time it runs. Start the sign-in again from the application."
    )]
    Diverged(String),
    /// A handler (`onLoginRequest`, `onSuccess`, `onFail`) is an `async`
    /// function or returns a Promise: what it would decide after its first
    /// `await` never runs, so its decision cannot be trusted.
    #[error(
        "the conditional authentication script's {0} returned a Promise (an async function?); handlers must decide synchronously, so the sign-in was stopped. The administrator must fix the script."
    )]
    Asynchronous(String),
    /// The engine itself failed.
    #[error("the conditional authentication script could not run: {0}")]
    Engine(String),
}
