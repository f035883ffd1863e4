//! # jit-script
//!
//! Conditional authentication scripts: JavaScript that decides which steps
//! of an application's sign-in flow run, with the surface users of the
//! seeds' product know:
//!
//! ```javascript
//! var onLoginRequest = function (context) {
//!     executeStep(1, {
//!         onSuccess: function (context) {
//!             if (context.steps[1].idp == 'LOCAL') {
//!                 executeStep(2);
//!             }
//!         },
//!         onFail: function (context) { fail('wrong password'); }
//!     });
//! };
//! ```
//!
//! - `onLoginRequest(context)`: the entry point.
//! - `executeStep(n)`, `executeStep(n, {onSuccess, onFail})` (and
//!   `executeStep(n, {}, {onSuccess, onFail})`): steps are numbered from 1.
//!   A failed step without `onFail` is tried again.
//! - `context.steps[n].idp` (`'LOCAL'`, a connection's name, `'TOTP'`,
//!   `'EMAIL_OTP'`), `context.steps[n].subject.username`,
//!   `context.currentKnownSubject` (`{username}` or `null`),
//!   `context.request.params` (name → value).
//! - `Log.debug/info/warn/error(...)` (to `tracing`, target `jit::script`,
//!   one line of at most 1000 characters), `fail()`, `fail(message)`,
//!   `fail({errorMessage})`.
//!
//! Everything else is plain ECMAScript without `Date`, `Math.random`,
//! `performance`, typed arrays, timers, modules, `require`, `fetch` or any
//! I/O: a script sees nothing of the machine. `Promise` and async functions
//! parse and run up to their first `await`, but no job ever runs.
//!
//! **Replayed, never suspended.** No engine outlives a call. Each
//! [`ScriptRunner::decide`] starts a fresh runtime, runs the script and
//! calls `onLoginRequest`; `executeStep` replays the recorded outcome of each
//! step already done (filling `context.steps[n]`, calling `onSuccess` or
//! `onFail` synchronously, so closures keep working) and the first step not
//! done yet is the decision: [`ScriptDecision::Execute`]. A script that
//! returns without asking for more is [`ScriptDecision::Complete`]. Asking
//! for the steps in another order than they were done is
//! [`ScriptError::Diverged`].
//!
//! **Fails closed.** A script that throws, loops, exceeds its limits
//! ([`ScriptLimits`]) or names a step that does not exist gives a
//! [`ScriptError`]; the engine ends the sign-in with it.

mod error;
mod surface;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rquickjs::context::{EvalOptions, intrinsic};
use rquickjs::{Coerced, Context, Ctx, Exception, Function, Runtime, Value};

pub use error::ScriptError;

use surface::{Shared, Signal, Stop, clean};

/// The name scripts are compiled under (shown in messages' positions).
const FILE_NAME: &str = "script";
/// What an error message keeps of the engine's text, in characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// The built-ins besides the base objects: no `Date` (clock), no
/// `Performance` (clock), no typed arrays, `WeakRef` or `Proxy`. `Eval` is
/// needed to run any source. `Promise` is needed by the engine itself:
/// without it, `import()` and async functions leave objects behind that
/// abort the process when the runtime is freed. No job is ever run, so
/// `then` callbacks and code after an `await` never run.
type Intrinsics = (
    intrinsic::Eval,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Json,
    intrinsic::MapSet,
    intrinsic::Promise,
);

/// Limits of one evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptLimits {
    /// Wall-clock time for one evaluation (engine start included).
    pub time_budget: Duration,
    /// Memory of the engine, in bytes.
    pub memory_limit: usize,
    /// Stack the script may use, in bytes (must fit in the calling thread's
    /// stack).
    pub max_stack_size: usize,
}

impl Default for ScriptLimits {
    /// 50 ms, 16 MiB, 256 KiB.
    fn default() -> Self {
        Self { time_budget: Duration::from_millis(50), memory_limit: 16 << 20, max_stack_size: 256 << 10 }
    }
}

/// How a completed step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// The step succeeded (`onSuccess`).
    Success,
    /// The step failed (`onFail`; without it, the step is tried again).
    Failure,
}

/// A step done earlier in this sign-in, as the script saw it being asked
/// for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedStepRecord {
    /// The step (1-based).
    pub step: usize,
    /// How it ended.
    pub outcome: StepOutcome,
    /// `context.steps[n].idp`: `LOCAL`, the connection's name, `TOTP` or
    /// `EMAIL_OTP`.
    pub idp: String,
    /// `context.steps[n].subject.username` after a success (`null` when
    /// `None` or after a failure).
    pub subject_username: Option<String>,
}

/// What a script decides from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptInput {
    /// How many steps the flow has (`executeStep(n)` needs 1 ≤ n ≤ this).
    pub steps_configured: usize,
    /// The steps done so far, in the order they were done.
    pub completed: Vec<CompletedStepRecord>,
    /// `context.request.params`: the authorization request's parameters
    /// that scripts may see (never secrets).
    pub request_params: BTreeMap<String, String>,
    /// `context.currentKnownSubject` before any step is replayed (a step
    /// that succeeds with a username replaces it).
    pub known_subject_username: Option<String>,
}

/// What the sign-in does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptDecision {
    /// Run step `n` (1-based) now.
    Execute(usize),
    /// The script asks for no further step: the sign-in is done if a step
    /// identified the user.
    Complete,
    /// The script called `fail()`: end the sign-in.
    Fail {
        /// The script's message, if any (one line, at most 300 characters).
        message: Option<String>,
    },
}

/// Runs conditional authentication scripts: pure and synchronous (no I/O);
/// every call starts and drops its own engine, so a runner can be shared by
/// all requests.
#[derive(Clone, Debug, Default)]
pub struct ScriptRunner {
    limits: ScriptLimits,
}

/// Which part of the script was running when it stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Setup,
    TopLevel,
    Login,
}

impl ScriptRunner {
    /// A runner with these limits.
    pub fn new(limits: ScriptLimits) -> Self {
        Self { limits }
    }

    /// The limits.
    pub fn limits(&self) -> &ScriptLimits {
        &self.limits
    }

    /// Checks a script when an application is saved: it compiles, its top
    /// level runs within the limits, and it defines `onLoginRequest` as a
    /// function. (`onLoginRequest` itself is not called.)
    pub fn validate(&self, source: &str) -> Result<(), ScriptError> {
        self.run(source, None).map(|_| ())
    }

    /// Runs the script for one request of a sign-in and says what comes
    /// next, replaying `input.completed`.
    pub fn decide(&self, source: &str, input: &ScriptInput) -> Result<ScriptDecision, ScriptError> {
        let decision = self.run(source, Some(input))?;
        decision.ok_or_else(|| ScriptError::Engine("the script was not run".into()))
    }

    fn run(&self, source: &str, input: Option<&ScriptInput>) -> Result<Option<ScriptDecision>, ScriptError> {
        let signal = Rc::new(Signal::new(Instant::now() + self.limits.time_budget));
        let runtime = Runtime::new().map_err(|e| self.engine_error(e))?;
        runtime.set_memory_limit(self.limits.memory_limit);
        runtime.set_max_stack_size(self.limits.max_stack_size);
        let interrupt = Rc::clone(&signal);
        runtime.set_interrupt_handler(Some(Box::new(move || interrupt.interrupt())));
        let context = Context::custom::<Intrinsics>(&runtime).map_err(|e| self.engine_error(e))?;
        let shared = Rc::new(Shared::new(input, Rc::clone(&signal)));
        // Declared last, dropped first: the saved `context` object goes
        // before the engine does, whatever happens.
        let _release = Release(Rc::clone(&shared));
        context.with(|ctx| self.evaluate(&ctx, source, input, &shared, &signal))
    }

    fn evaluate<'js>(
        &self,
        ctx: &Ctx<'js>,
        source: &str,
        input: Option<&ScriptInput>,
        shared: &Rc<Shared>,
        signal: &Signal,
    ) -> Result<Option<ScriptDecision>, ScriptError> {
        surface::install(ctx, shared).map_err(|e| self.failure(ctx, e, signal, Phase::Setup))?;
        ctx.eval_with_options::<(), _>(source, eval_options())
            .map_err(|e| self.failure(ctx, e, signal, Phase::TopLevel))?;
        let entry: Value<'js> = ctx
            .eval_with_options("typeof onLoginRequest === 'function' ? onLoginRequest : undefined", eval_options())
            .map_err(|e| self.failure(ctx, e, signal, Phase::TopLevel))?;
        let entry: Function<'js> = entry.into_function().ok_or(ScriptError::MissingEntryPoint)?;
        let Some(input) = input else {
            return Ok(None);
        };

        let context = surface::new_context(ctx, input).map_err(|e| self.failure(ctx, e, signal, Phase::Setup))?;
        shared.begin_login(ctx, context.clone());
        let result = match entry.call::<_, Value<'js>>((context,)) {
            // An async onLoginRequest returns before it decides.
            Ok(returned) if returned.is_promise() => {
                Err(shared.overrule(ctx, ScriptError::Asynchronous("onLoginRequest".into())))
            }
            other => other.map(|_| ()),
        };
        shared.release();

        // A decision recorded on the Rust side wins over however the
        // evaluation ended (a `catch` in the script cannot undo it).
        if let Some(stop) = shared.take_stop() {
            if let Err(rquickjs::Error::Exception) = result {
                drop(ctx.catch());
            }
            return match stop {
                Stop::Execute(step) => Ok(Some(ScriptDecision::Execute(step))),
                Stop::Fail(message) => Ok(Some(ScriptDecision::Fail { message })),
                Stop::Error(error) => Err(error),
            };
        }
        result.map_err(|e| self.failure(ctx, e, signal, Phase::Login))?;
        match shared.unreplayed() {
            Some(record) => Err(ScriptError::Diverged(format!(
                "step {} was done, but the script now finishes without asking for it",
                record.step
            ))),
            None => Ok(Some(ScriptDecision::Complete)),
        }
    }

    /// Turns an engine error into what the user and the administrator see.
    fn failure<'js>(&self, ctx: &Ctx<'js>, error: rquickjs::Error, signal: &Signal, phase: Phase) -> ScriptError {
        if signal.timed_out.get() {
            return self.timed_out();
        }
        match error {
            rquickjs::Error::Exception => {
                let thrown = describe(ctx, ctx.catch());
                if signal.timed_out.get() {
                    return self.timed_out();
                }
                if thrown.out_of_memory() {
                    self.out_of_memory()
                } else if thrown.stack_overflow() {
                    ScriptError::StackOverflow
                } else if phase == Phase::TopLevel && thrown.name.as_deref() == Some("SyntaxError") {
                    ScriptError::Syntax(thrown.to_string())
                } else {
                    ScriptError::Threw(thrown.to_string())
                }
            }
            rquickjs::Error::Allocation => self.out_of_memory(),
            other => self.engine_error(other),
        }
    }

    fn engine_error(&self, error: rquickjs::Error) -> ScriptError {
        match error {
            rquickjs::Error::Allocation => self.out_of_memory(),
            other => ScriptError::Engine(clean(&other.to_string(), MAX_MESSAGE_CHARS)),
        }
    }

    fn timed_out(&self) -> ScriptError {
        ScriptError::TimedOut { budget_ms: u64::try_from(self.limits.time_budget.as_millis()).unwrap_or(u64::MAX) }
    }

    fn out_of_memory(&self) -> ScriptError {
        ScriptError::OutOfMemory { limit_bytes: self.limits.memory_limit }
    }
}

/// Sloppy mode (like the seeds' product), global code, our file name.
fn eval_options() -> EvalOptions {
    let mut options = EvalOptions::default();
    options.strict = false;
    options.filename = Some(FILE_NAME.into());
    options
}

/// Drops the saved `context` object when the evaluation ends.
struct Release(Rc<Shared>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A thrown value, for messages.
struct Thrown {
    name: Option<String>,
    message: String,
    position: Option<String>,
    /// `null` was thrown.
    null: bool,
}

impl Thrown {
    fn is(&self, name: &str, message: &str) -> bool {
        self.name.as_deref() == Some(name) && self.message == message
    }

    /// QuickJS throws `InternalError: out of memory`, or `null` when it
    /// cannot even build that error (the usual case). A script that throws
    /// `null` itself is reported the same way.
    fn out_of_memory(&self) -> bool {
        self.null || self.is("InternalError", "out of memory")
    }

    fn stack_overflow(&self) -> bool {
        self.is("RangeError", "Maximum call stack size exceeded") || self.is("InternalError", "stack overflow")
    }
}

impl std::fmt::Display for Thrown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(name) = &self.name {
            write!(f, "{name}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(position) = &self.position {
            write!(f, " ({position})")?;
        }
        Ok(())
    }
}

/// Name, message and position of a thrown value. Reading them may run the
/// script's code (getters, `toString`); whatever fails is left out.
fn describe<'js>(ctx: &Ctx<'js>, thrown: Value<'js>) -> Thrown {
    let error = thrown.as_object().filter(|o| o.is_error()).cloned().and_then(Exception::from_object);
    let Some(error) = error else {
        if thrown.is_null() {
            return Thrown { name: None, message: "uncaught null".into(), position: None, null: true };
        }
        let message = rquickjs::FromJs::from_js(ctx, thrown)
            .map(|Coerced::<String>(text)| format!("uncaught {}", clean(&text, MAX_MESSAGE_CHARS)))
            .unwrap_or_else(|_| "uncaught value that cannot be shown".into());
        return Thrown { name: None, message, position: None, null: false };
    };
    let name = error.get::<_, Option<Coerced<String>>>("name").ok().flatten().map(|n| clean(&n.0, 40));
    let message = error.message().map(|m| clean(&m, MAX_MESSAGE_CHARS)).unwrap_or_default();
    let position = error.stack().as_deref().and_then(position_in_script);
    Thrown { name, message, position, null: false }
}

/// `line L, column C` of the first frame of a stack that is in the script.
fn position_in_script(stack: &str) -> Option<String> {
    let marker = format!("{FILE_NAME}:");
    let start = stack.find(&marker)? + marker.len();
    let mut numbers = stack[start..].split(|c: char| !c.is_ascii_digit()).take(2);
    let line: u32 = numbers.next()?.parse().ok()?;
    match numbers.next().and_then(|c| c.parse::<u32>().ok()) {
        Some(column) => Some(format!("line {line}, column {column}")),
        None => Some(format!("line {line}")),
    }
}
