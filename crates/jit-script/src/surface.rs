//! The globals a script sees: `executeStep`, `fail`, `Log`, and the
//! `context` object passed to `onLoginRequest`; and the replay of the steps
//! already done.
//!
//! Stopping: when the script asks for a step that has not been done yet (or
//! calls `fail()`, or names a step that does not exist), the decision is
//! recorded here, on the Rust side, and a JavaScript error unwinds the
//! script. A `try`/`catch` in the script may catch that error, but it cannot
//! undo the decision: every later call of the surface throws again (`Log`
//! goes silent), the interrupt handler ends the evaluation at its next check
//! with an exception no script can catch, and the recorded decision wins over
//! whatever the evaluation returns.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use rquickjs::function::Rest;
use rquickjs::{Coerced, Ctx, Exception, FromJs, Function, Object, Persistent, Value};

use super::{CompletedStepRecord, ScriptError, ScriptInput, StepOutcome};

/// What the script's `Log` keeps of a message, in characters.
pub(super) const MAX_LOG_CHARS: usize = 1000;
/// What a `fail()` message keeps, in characters.
pub(super) const MAX_FAIL_CHARS: usize = 300;
/// The `tracing` target of the script's `Log`.
pub(super) const LOG_TARGET: &str = "jit::script";
/// The message of the error that unwinds a stopped script.
const STOPPED: &str = "the sign-in script has stopped here (a step is due or the sign-in ended)";

/// Why the evaluation stopped before returning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// Step `n` is due.
    Execute(usize),
    /// `fail()`.
    Fail(Option<String>),
    /// A mistake that ends the sign-in.
    Error(ScriptError),
}

/// What the interrupt handler looks at (no JavaScript values in here, so
/// the runtime can own it).
#[derive(Debug)]
pub(super) struct Signal {
    pub(super) stopped: Cell<bool>,
    pub(super) timed_out: Cell<bool>,
    pub(super) deadline: Instant,
}

impl Signal {
    pub(super) fn new(deadline: Instant) -> Self {
        Self { stopped: Cell::new(false), timed_out: Cell::new(false), deadline }
    }

    /// The interrupt handler: `true` ends the evaluation (uncatchably).
    pub(super) fn interrupt(&self) -> bool {
        if self.stopped.get() {
            return true;
        }
        if Instant::now() >= self.deadline {
            self.timed_out.set(true);
            return true;
        }
        false
    }
}

/// The state of one evaluation, shared by the surface functions.
pub(super) struct Shared {
    records: Vec<CompletedStepRecord>,
    steps_configured: usize,
    cursor: Cell<usize>,
    in_login: Cell<bool>,
    stop: RefCell<Option<Stop>>,
    signal: Rc<Signal>,
    /// The `context` object; taken (dropped) before the runtime goes.
    context: RefCell<Option<Persistent<Object<'static>>>>,
}

impl Shared {
    pub(super) fn new(input: Option<&ScriptInput>, signal: Rc<Signal>) -> Self {
        Self {
            records: input.map(|i| i.completed.clone()).unwrap_or_default(),
            steps_configured: input.map_or(0, |i| i.steps_configured),
            cursor: Cell::new(0),
            in_login: Cell::new(false),
            stop: RefCell::new(None),
            signal,
            context: RefCell::new(None),
        }
    }

    /// Records done so far that the script has not asked for again.
    pub(super) fn unreplayed(&self) -> Option<&CompletedStepRecord> {
        self.records.get(self.cursor.get())
    }

    pub(super) fn take_stop(&self) -> Option<Stop> {
        self.stop.borrow_mut().take()
    }

    /// Enters `onLoginRequest` with `context`.
    pub(super) fn begin_login<'js>(&self, ctx: &Ctx<'js>, context: Object<'js>) {
        *self.context.borrow_mut() = Some(Persistent::save(ctx, context));
        self.in_login.set(true);
    }

    /// Drops the saved `context` (it must not outlive the runtime).
    pub(super) fn release(&self) {
        self.in_login.set(false);
        drop(self.context.borrow_mut().take());
    }

    fn stopped(&self) -> bool {
        self.signal.stopped.get()
    }

    /// Records `stop` (the first one wins) and unwinds.
    fn halt(&self, ctx: &Ctx<'_>, stop: Stop) -> rquickjs::Error {
        let mut current = self.stop.borrow_mut();
        if current.is_none() {
            *current = Some(stop);
        }
        self.signal.stopped.set(true);
        Exception::throw_internal(ctx, STOPPED)
    }

    /// Records `error` in place of any decision taken so far, and unwinds:
    /// for faults that make whatever the script decided untrustworthy (an
    /// `async` handler decides after it has returned, i.e. never).
    pub(super) fn overrule(&self, ctx: &Ctx<'_>, error: ScriptError) -> rquickjs::Error {
        *self.stop.borrow_mut() = Some(Stop::Error(error));
        self.signal.stopped.set(true);
        Exception::throw_internal(ctx, STOPPED)
    }

    fn unwind(&self, ctx: &Ctx<'_>) -> rquickjs::Error {
        Exception::throw_internal(ctx, STOPPED)
    }

    fn context<'js>(&self, ctx: &Ctx<'js>) -> rquickjs::Result<Object<'js>> {
        match self.context.borrow().clone() {
            Some(context) => context.restore(ctx),
            None => Err(Exception::throw_internal(ctx, "the sign-in context is not available")),
        }
    }

    /// `executeStep(n)`, `executeStep(n, callbacks)`,
    /// `executeStep(n, options, callbacks)`.
    fn execute_step<'js>(&self, ctx: &Ctx<'js>, args: &[Value<'js>]) -> rquickjs::Result<()> {
        if self.stopped() {
            return Err(self.unwind(ctx));
        }
        if !self.in_login.get() {
            return Err(Exception::throw_type(ctx, "executeStep can only be called while onLoginRequest runs"));
        }
        let step = step_number(ctx, args.first())?;
        let callbacks = match args.len() {
            0..=2 => args.get(1),
            _ => {
                no_options(ctx, args.get(1))?;
                args.get(2)
            }
        };
        let (on_success, on_fail) = event_callbacks(ctx, callbacks)?;
        let n = match usize::try_from(step) {
            Ok(n) if (1..=self.steps_configured).contains(&n) => n,
            _ => {
                return Err(
                    self.halt(ctx, Stop::Error(ScriptError::UnknownStep { step, configured: self.steps_configured }))
                );
            }
        };
        loop {
            let cursor = self.cursor.get();
            let Some(record) = self.records.get(cursor) else {
                // Not done yet: this is the step to run now.
                return Err(self.halt(ctx, Stop::Execute(n)));
            };
            if record.step != n {
                let why = format!("step {} was done next, but the script now asks for step {n}", record.step);
                return Err(self.halt(ctx, Stop::Error(ScriptError::Diverged(why))));
            }
            self.cursor.set(cursor + 1);
            let context = self.context(ctx)?;
            replay_into(ctx, &context, record)?;
            let handler = match record.outcome {
                StepOutcome::Success => on_success.clone(),
                // Without `onFail`, a failed step is tried again (the next
                // record must be the same step, or the step is due again).
                StepOutcome::Failure => match &on_fail {
                    Some(handler) => Some(handler.clone()),
                    None => continue,
                },
            };
            if let Some(handler) = handler {
                let returned = handler.call::<_, Value<'js>>((context,))?;
                if returned.is_promise() {
                    let name = if record.outcome == StepOutcome::Success { "onSuccess" } else { "onFail" };
                    return Err(self.overrule(ctx, ScriptError::Asynchronous(name.into())));
                }
            }
            return Ok(());
        }
    }

    /// `fail()`, `fail(message)`, `fail({errorMessage})`.
    fn fail<'js>(&self, ctx: &Ctx<'js>, args: &[Value<'js>]) -> rquickjs::Result<()> {
        if self.stopped() {
            return Err(self.unwind(ctx));
        }
        if !self.in_login.get() {
            return Err(Exception::throw_type(ctx, "fail can only be called while onLoginRequest runs"));
        }
        let message = match args.first() {
            Some(value) if value.is_string() => Some(Coerced::<String>::from_js(ctx, value.clone())?.0),
            Some(value) => match value.as_object() {
                Some(object) => object.get::<_, Option<Coerced<String>>>("errorMessage")?.map(|m| m.0),
                None => None,
            },
            None => None,
        };
        let message = message.map(|m| clean(&m, MAX_FAIL_CHARS)).filter(|m| !m.is_empty());
        Err(self.halt(ctx, Stop::Fail(message)))
    }

    /// `Log.<level>(...)`: silent once the script has stopped.
    fn log<'js>(&self, ctx: &Ctx<'js>, level: Level, args: Vec<Value<'js>>) -> rquickjs::Result<()> {
        if self.stopped() {
            return Ok(());
        }
        let mut parts = Vec::with_capacity(args.len());
        for value in args {
            parts.push(Coerced::<String>::from_js(ctx, value)?.0);
        }
        let message = clean(&parts.join(" "), MAX_LOG_CHARS);
        match level {
            Level::Debug => tracing::debug!(target: LOG_TARGET, "{message}"),
            Level::Info => tracing::info!(target: LOG_TARGET, "{message}"),
            Level::Warn => tracing::warn!(target: LOG_TARGET, "{message}"),
            Level::Error => tracing::error!(target: LOG_TARGET, "{message}"),
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// Installs `executeStep`, `fail` and `Log`, and removes what would make a
/// re-run decide differently (`Math.random`) or would never run
/// (`queueMicrotask`: no jobs are run).
pub(super) fn install<'js>(ctx: &Ctx<'js>, shared: &Rc<Shared>) -> rquickjs::Result<()> {
    let globals = ctx.globals();

    let state = Rc::clone(shared);
    let execute_step =
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| state.execute_step(&ctx, &args.0))?
            .with_name("executeStep")?;
    globals.set("executeStep", execute_step)?;

    let state = Rc::clone(shared);
    let fail = Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| state.fail(&ctx, &args.0))?
        .with_name("fail")?;
    globals.set("fail", fail)?;

    let log = Object::new(ctx.clone())?;
    for (name, level) in
        [("debug", Level::Debug), ("info", Level::Info), ("warn", Level::Warn), ("error", Level::Error)]
    {
        let state = Rc::clone(shared);
        let function =
            Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| state.log(&ctx, level, args.0))?
                .with_name(name)?;
        log.set(name, function)?;
    }
    globals.set("Log", log)?;

    // Replays must decide the same way every time: no randomness.
    let math: Object<'js> = globals.get("Math")?;
    math.remove("random")?;
    globals.remove("queueMicrotask")?;
    Ok(())
}

/// The `context` passed to `onLoginRequest`: `steps` (filled as completed
/// steps are replayed), `currentKnownSubject`, `request.params`.
pub(super) fn new_context<'js>(ctx: &Ctx<'js>, input: &ScriptInput) -> rquickjs::Result<Object<'js>> {
    let context = Object::new(ctx.clone())?;
    context.set("steps", Object::new(ctx.clone())?)?;
    context.set("currentKnownSubject", subject(ctx, input.known_subject_username.as_deref())?)?;
    let params = Object::new(ctx.clone())?;
    for (name, value) in &input.request_params {
        params.set(name.as_str(), value.as_str())?;
    }
    let request = Object::new(ctx.clone())?;
    request.set("params", params)?;
    context.set("request", request)?;
    Ok(context)
}

/// `{username}` or `null`.
fn subject<'js>(ctx: &Ctx<'js>, username: Option<&str>) -> rquickjs::Result<Value<'js>> {
    match username {
        Some(username) => {
            let subject = Object::new(ctx.clone())?;
            subject.set("username", username)?;
            Ok(subject.into_value())
        }
        None => Ok(Value::new_null(ctx.clone())),
    }
}

/// Fills `context.steps[n]` (and `context.currentKnownSubject` after a
/// success) from a completed step.
fn replay_into<'js>(ctx: &Ctx<'js>, context: &Object<'js>, record: &CompletedStepRecord) -> rquickjs::Result<()> {
    let success = record.outcome == StepOutcome::Success;
    let step = Object::new(ctx.clone())?;
    step.set("idp", record.idp.as_str())?;
    let username = record.subject_username.as_deref().filter(|_| success);
    step.set("subject", subject(ctx, username)?)?;
    step.set("success", success)?;
    let steps: Object<'js> = context.get("steps")?;
    let number = u32::try_from(record.step).map_err(|_| Exception::throw_range(ctx, "step number out of range"))?;
    steps.set(number, step)?;
    if let Some(username) = username {
        context.set("currentKnownSubject", subject(ctx, Some(username))?)?;
    }
    Ok(())
}

/// The step number: an integer.
fn step_number<'js>(ctx: &Ctx<'js>, value: Option<&Value<'js>>) -> rquickjs::Result<i64> {
    match value.and_then(Value::as_number) {
        Some(number) if number.is_finite() && number.fract() == 0.0 => Ok(number as i64),
        _ => Err(Exception::throw_type(ctx, "executeStep needs a step number (1 for the first step)")),
    }
}

/// The options of `executeStep(n, options, callbacks)`: only empty ones
/// (authentication option filtering is not supported).
fn no_options<'js>(ctx: &Ctx<'js>, value: Option<&Value<'js>>) -> rquickjs::Result<()> {
    let Some(value) = value.filter(|v| !v.is_undefined() && !v.is_null()) else {
        return Ok(());
    };
    match value.as_object() {
        Some(options) if options.keys::<String>().next().is_none() => Ok(()),
        _ => Err(Exception::throw_type(
            ctx,
            "executeStep options (such as authenticationOptions) are not supported; configure the step's options in the sign-in flow",
        )),
    }
}

type Callbacks<'js> = (Option<Function<'js>>, Option<Function<'js>>);

/// `{onSuccess, onFail}`: other names are refused (a misspelt handler must
/// not be skipped silently).
fn event_callbacks<'js>(ctx: &Ctx<'js>, value: Option<&Value<'js>>) -> rquickjs::Result<Callbacks<'js>> {
    let Some(value) = value.filter(|v| !v.is_undefined() && !v.is_null()) else {
        return Ok((None, None));
    };
    let Some(callbacks) = value.as_object() else {
        return Err(Exception::throw_type(ctx, "executeStep callbacks must be an object: {onSuccess, onFail}"));
    };
    for key in callbacks.keys::<String>() {
        let key = key?;
        if key != "onSuccess" && key != "onFail" {
            return Err(Exception::throw_type(
                ctx,
                &format!("executeStep callbacks may be onSuccess and onFail; {:?} is not supported", clean(&key, 40)),
            ));
        }
    }
    Ok((handler(ctx, callbacks, "onSuccess")?, handler(ctx, callbacks, "onFail")?))
}

fn handler<'js>(ctx: &Ctx<'js>, callbacks: &Object<'js>, name: &str) -> rquickjs::Result<Option<Function<'js>>> {
    let value: Value<'js> = callbacks.get(name)?;
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    match value.into_function() {
        Some(function) => Ok(Some(function)),
        None => Err(Exception::throw_type(ctx, &format!("executeStep callback {name} must be a function"))),
    }
}

/// One line of at most `max` characters, control characters replaced.
pub(super) fn clean(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}
