//! Tests of the script runner: one `check(script, input, expected)` helper
//! and many small cases.

use std::sync::{Arc, Mutex};

use jit_domain::flow::SKIP_MFA_FOR_FEDERATED_SCRIPT;

use super::*;

/// The script of the seeds (both documents print it identically), byte for
/// byte as printed, with the line end of its last line.
const SEEDS_SCRIPT: &str = r"var localAuthenticator = 'LOCAL';
var onLoginRequest = function (context) {
    executeStep(1, {
        onSuccess: function (context) {
            var step = context.steps[1];
            if (step.idp == localAuthenticator) {
                executeStep(2); // MFA Step
            }
        }
    });
};
";

fn ok(step: usize, idp: &str, username: &str) -> CompletedStepRecord {
    CompletedStepRecord {
        step,
        outcome: StepOutcome::Success,
        idp: idp.into(),
        subject_username: Some(username.into()),
    }
}

fn failed(step: usize, idp: &str) -> CompletedStepRecord {
    CompletedStepRecord { step, outcome: StepOutcome::Failure, idp: idp.into(), subject_username: None }
}

fn input(steps_configured: usize, completed: &[CompletedStepRecord]) -> ScriptInput {
    ScriptInput { steps_configured, completed: completed.to_vec(), ..ScriptInput::default() }
}

fn render(result: Result<ScriptDecision, ScriptError>) -> String {
    match result {
        Ok(ScriptDecision::Execute(step)) => format!("execute {step}"),
        Ok(ScriptDecision::Complete) => "complete".into(),
        Ok(ScriptDecision::Fail { message: None }) => "fail".into(),
        Ok(ScriptDecision::Fail { message: Some(message) }) => format!("fail: {message}"),
        Err(error) => format!("error {error:?}"),
    }
}

/// Runs `script` on `input`; a decision must match `expected` exactly, an
/// error (`"error <Debug>"`) must start with it.
#[track_caller]
fn check(script: &str, input: &ScriptInput, expected: &str) {
    let got = render(ScriptRunner::default().decide(script, input));
    if expected.starts_with("error") {
        assert!(got.starts_with(expected), "expected {expected:?}…, got {got:?}");
    } else {
        assert_eq!(got, expected);
    }
}

#[track_caller]
fn check_validate(script: &str, expected: &str) {
    let got = match ScriptRunner::default().validate(script) {
        Ok(()) => "ok".to_owned(),
        Err(error) => format!("error {error:?}"),
    };
    assert!(got.starts_with(expected), "expected {expected:?}…, got {got:?}");
}

#[test]
fn the_domain_suggestion_is_the_seeds_script() {
    assert_eq!(format!("{SKIP_MFA_FOR_FEDERATED_SCRIPT}\n"), SEEDS_SCRIPT);
}

#[test]
fn seeds_script_local_users_do_step_2_federated_users_skip_it() {
    for script in [SEEDS_SCRIPT, SKIP_MFA_FOR_FEDERATED_SCRIPT] {
        check(script, &input(2, &[]), "execute 1");
        check(script, &input(2, &[ok(1, "LOCAL", "alice")]), "execute 2");
        check(script, &input(2, &[ok(1, "LOCAL", "alice"), ok(2, "TOTP", "alice")]), "complete");
        check(script, &input(2, &[ok(1, "LOCAL", "alice"), ok(2, "EMAIL_OTP", "alice")]), "complete");
        check(script, &input(2, &[ok(1, "corp", "bob@corp.example")]), "complete");
        // No onFail: a failed step is tried again.
        check(script, &input(2, &[failed(1, "LOCAL")]), "execute 1");
        check(script, &input(2, &[failed(1, "LOCAL"), ok(1, "corp", "bob")]), "complete");
        check(script, &input(2, &[failed(1, "LOCAL"), failed(1, "LOCAL"), ok(1, "LOCAL", "a")]), "execute 2");
        check(script, &input(2, &[ok(1, "LOCAL", "alice"), failed(2, "TOTP")]), "execute 2");
        check_validate(script, "ok");
    }
}

#[test]
fn on_fail_takes_over_a_failed_step() {
    let script = "var onLoginRequest = function (context) {
        executeStep(1, {
            onSuccess: function (context) { executeStep(2); },
            onFail: function (context) { executeStep(3); }
        });
    };";
    check(script, &input(3, &[]), "execute 1");
    check(script, &input(3, &[ok(1, "LOCAL", "a")]), "execute 2");
    check(script, &input(3, &[failed(1, "LOCAL")]), "execute 3");
    check(script, &input(3, &[failed(1, "LOCAL"), ok(3, "corp", "a")]), "complete");
    check(
        script,
        &input(3, &[failed(1, "LOCAL"), ok(2, "TOTP", "a")]),
        "error Diverged(\"step 2 was done next, but the script now asks for step 3",
    );
    // The three-argument form, with empty options.
    let script = "var onLoginRequest = function (context) {
        executeStep(1, {}, { onFail: function () { fail('no retry'); } });
    };";
    check(script, &input(1, &[failed(1, "LOCAL")]), "fail: no retry");
    check(script, &input(1, &[ok(1, "LOCAL", "a")]), "complete");
}

#[test]
fn fail_ends_the_sign_in() {
    let script = "var onLoginRequest = function (context) {
        executeStep(1, {
            onSuccess: function (context) {
                if (context.steps[1].subject.username == 'mallory') {
                    fail('Mallory may not sign in here');
                }
            }
        });
        executeStep(2);
    };";
    check(script, &input(2, &[ok(1, "LOCAL", "mallory")]), "fail: Mallory may not sign in here");
    check(script, &input(2, &[ok(1, "LOCAL", "alice")]), "execute 2");
    check("var onLoginRequest = function () { fail(); };", &input(1, &[]), "fail");
    check("var onLoginRequest = function () { fail({errorMessage: 'no'}); };", &input(1, &[]), "fail: no");
    check("var onLoginRequest = function () { fail('a\\nb'); };", &input(1, &[]), "fail: a b");
    check("var onLoginRequest = function () { fail(42); };", &input(1, &[]), "fail");
    let long = format!("var onLoginRequest = function () {{ fail('{}'); }};", "x".repeat(400));
    check(&long, &input(1, &[]), &format!("fail: {}…", "x".repeat(300)));
}

#[test]
fn syntax_errors_are_reported_with_their_line() {
    let script = "var onLoginRequest = function (context) {\n    executeStep(1;\n};";
    check(script, &input(1, &[]), "error Syntax(\"SyntaxError: ");
    check_validate(script, "error Syntax(\"SyntaxError: ");
    let message = ScriptRunner::default().validate(script).map_err(|e| e.to_string());
    assert!(message.as_ref().is_err_and(|m| m.contains("line 2")), "{message:?}");
    check_validate("var onLoginRequest = function (context) {", "error Syntax(");
}

#[test]
fn validation_needs_an_on_login_request_function() {
    check_validate("var onLoginRequest = function (context) { executeStep(1); };", "ok");
    check_validate("function onLoginRequest(context) { executeStep(1); }", "ok");
    check_validate("let onLoginRequest = (context) => executeStep(1);", "ok");
    check_validate("", "error MissingEntryPoint");
    check_validate("var onLoginRequest = 3;", "error MissingEntryPoint");
    check_validate("var onLoginReqest = function (context) {};", "error MissingEntryPoint");
    check_validate(
        "executeStep(1);",
        "error Threw(\"TypeError: executeStep can only be called while onLoginRequest runs",
    );
    check_validate("fail();", "error Threw(\"TypeError: fail can only be called while onLoginRequest runs");
    check_validate("while (true) {}", "error TimedOut");
    check_validate("throw new Error('top')", "error Threw(\"Error: top (line 1");
    check("var x = 1;", &input(1, &[]), "error MissingEntryPoint");
}

#[test]
fn endless_loops_are_stopped() {
    let timed_out = "error TimedOut { budget_ms: 50 }";
    check("var onLoginRequest = function (context) { while (true) {} };", &input(1, &[]), timed_out);
    check(
        "var onLoginRequest = function (context) { for (;;) { try { while (true) {} } catch (e) {} } };",
        &input(1, &[]),
        timed_out,
    );
    check("while (true) {}", &input(1, &[]), timed_out);
    // Catastrophic backtracking in a regular expression.
    let regex = "var onLoginRequest = function (context) {
        /^(a+)+$/.test('a'.repeat(40) + 'b');
    };";
    check(regex, &input(1, &[]), timed_out);
    // A loop inside a callback, during replay.
    let callback = "var onLoginRequest = function (context) {
        executeStep(1, { onSuccess: function () { while (true) {} } });
    };";
    check(callback, &input(1, &[ok(1, "LOCAL", "a")]), timed_out);
}

#[test]
fn exceptions_fail_closed_with_their_message() {
    let script = "var onLoginRequest = function (context) {\n    throw new Error('boom');\n};";
    check(script, &input(1, &[]), "error Threw(\"Error: boom (line 2, column");
    check("var onLoginRequest = function () { throw 'plain'; };", &input(1, &[]), "error Threw(\"uncaught plain\")");
    check(
        "var onLoginRequest = function () { throw undefined; };",
        &input(1, &[]),
        "error Threw(\"uncaught undefined\")",
    );
    // QuickJS throws null when it runs out of memory building an error.
    check("var onLoginRequest = function () { throw null; };", &input(1, &[]), "error OutOfMemory");
    check(
        "var onLoginRequest = function (context) { return context.steps[1].idp; };",
        &input(1, &[]),
        "error Threw(\"TypeError: cannot read property 'idp' of undefined",
    );
    check(
        "var onLoginRequest = function () { undefinedFunction(); };",
        &input(1, &[]),
        "error Threw(\"ReferenceError: ",
    );
    // A thrown object whose toString loops: bounded by the time budget.
    check(
        "var onLoginRequest = function () { throw { toString: function () { while (true) {} } }; };",
        &input(1, &[]),
        "error TimedOut",
    );
}

#[test]
fn steps_that_do_not_exist_end_the_sign_in() {
    check(
        "var onLoginRequest = function () { executeStep(3); };",
        &input(2, &[]),
        "error UnknownStep { step: 3, configured: 2 }",
    );
    check(
        "var onLoginRequest = function () { executeStep(0); };",
        &input(2, &[]),
        "error UnknownStep { step: 0, configured: 2 }",
    );
    check(
        "var onLoginRequest = function () { executeStep(-1); };",
        &input(2, &[]),
        "error UnknownStep { step: -1, configured: 2 }",
    );
    // Even when the script catches the error.
    check(
        "var onLoginRequest = function () { try { executeStep(3); } catch (e) {} executeStep(1); };",
        &input(2, &[]),
        "error UnknownStep { step: 3, configured: 2 }",
    );
    // The seeds' script on a one-step flow: the local user's step 2 is missing.
    check(SEEDS_SCRIPT, &input(1, &[ok(1, "LOCAL", "a")]), "error UnknownStep { step: 2, configured: 1 }");
    check(SEEDS_SCRIPT, &input(1, &[ok(1, "corp", "a")]), "complete");
    check(
        "var onLoginRequest = function () { executeStep('1'); };",
        &input(2, &[]),
        "error Threw(\"TypeError: executeStep needs a step number",
    );
    check(
        "var onLoginRequest = function () { executeStep(1.5); };",
        &input(2, &[]),
        "error Threw(\"TypeError: executeStep needs a step number",
    );
    check(
        "var onLoginRequest = function () { executeStep(); };",
        &input(2, &[]),
        "error Threw(\"TypeError: executeStep needs a step number",
    );
}

#[test]
fn unsupported_arguments_fail_closed() {
    check(
        "var onLoginRequest = function () { executeStep(1, { onSucess: function () {} }); };",
        &input(1, &[]),
        "error Threw(\"TypeError: executeStep callbacks may be onSuccess and onFail; \\\"onSucess\\\" is not supported",
    );
    check(
        "var onLoginRequest = function () { executeStep(1, { authenticationOptions: [{ idp: 'corp' }] }, {}); };",
        &input(1, &[]),
        "error Threw(\"TypeError: executeStep options (such as authenticationOptions) are not supported",
    );
    check(
        "var onLoginRequest = function () { executeStep(1, { onSuccess: 3 }); };",
        &input(1, &[]),
        "error Threw(\"TypeError: executeStep callback onSuccess must be a function",
    );
    check(
        "var onLoginRequest = function () { executeStep(1, 'x'); };",
        &input(1, &[]),
        "error Threw(\"TypeError: executeStep callbacks must be an object",
    );
}

#[test]
fn memory_and_stack_are_capped() {
    // A generous time budget, so that the memory limit is what stops them.
    let runner = ScriptRunner::new(ScriptLimits { time_budget: Duration::from_secs(10), ..ScriptLimits::default() });
    let run = |script: &str| render(runner.decide(script, &input(1, &[])));
    let out_of_memory = "error OutOfMemory { limit_bytes: 16777216 }";
    for script in [
        "var onLoginRequest = function () { var o = {}; for (var i = 0; ; i++) { o['k' + i] = i; } };",
        "var onLoginRequest = function () { var a = []; while (true) { a.push(new Array(100000).fill(1)); } };",
        "var onLoginRequest = function () { var a = []; while (true) { a.push({ self: a, s: 'x' + a.length }); } };",
        "var onLoginRequest = function () { var a = []; try { while (true) { a.push([a]); } } catch (e) { a = null; throw e; } };",
        "var big = 'x'.repeat(1 << 28);",
    ] {
        assert_eq!(run(script), out_of_memory, "{script}");
    }
    // Strings are ropes: doubling one hits the length limit first.
    let doubling = "var onLoginRequest = function () { var s = 'x'; while (true) { s = s + s; } };";
    assert!(run(doubling).starts_with("error Threw(\"InternalError: string too long"), "{}", run(doubling));
    let recursion = "var onLoginRequest = function () { var f = function (n) { return f(n + 1) + 1; }; f(0); };";
    assert_eq!(run(recursion), "error StackOverflow");
    // Through the surface: recursion across executeStep and its callbacks.
    let nested = "var onLoginRequest = function (context) {
        var again = function () { executeStep(1, { onSuccess: again }); };
        again();
    };";
    let many: Vec<CompletedStepRecord> = (0..100_000).map(|_| ok(1, "LOCAL", "a")).collect();
    assert_eq!(render(runner.decide(nested, &input(1, &many))), "error StackOverflow");
}

#[test]
fn a_script_cannot_swallow_its_stop() {
    let swallow = "var onLoginRequest = function (context) {
        try { executeStep(1); } catch (e) { Log.info('swallowed: ' + e); }
        try { executeStep(2); } catch (e) {}
        try { fail('nope'); } catch (e) {}
    };";
    check(swallow, &input(2, &[]), "execute 1");
    check(swallow, &input(2, &[ok(1, "LOCAL", "a")]), "execute 2");
    check(swallow, &input(2, &[ok(1, "LOCAL", "a"), ok(2, "TOTP", "a")]), "fail: nope");
    // Catching and looping: the stop ends the evaluation, not the budget.
    let looping = "var onLoginRequest = function (context) {
        try { executeStep(1); } catch (e) { while (true) {} }
    };";
    check(looping, &input(1, &[]), "execute 1");
    // Catching inside a callback.
    let nested = "var onLoginRequest = function (context) {
        executeStep(1, { onSuccess: function () { try { executeStep(2); } catch (e) {} } });
        executeStep(1);
    };";
    check(nested, &input(2, &[ok(1, "LOCAL", "a")]), "execute 2");
}

#[test]
fn the_sandbox_offers_no_clock_io_or_randomness() {
    let probe = "var onLoginRequest = function (context) {
        var names = ['Date', 'performance', 'require', 'fetch', 'XMLHttpRequest', 'WebSocket', 'setTimeout',
            'setInterval', 'queueMicrotask', 'console', 'print', 'std', 'os', 'scriptArgs', 'gc', 'bjson',
            'WebAssembly', 'process', 'Deno', 'Bun', 'SharedArrayBuffer', 'Atomics', 'WeakRef'];
        var present = names.filter(function (name) { return typeof globalThis[name] !== 'undefined'; });
        if (typeof Math.random !== 'undefined') { present.push('Math.random'); }
        if (present.length) { fail(present.join(',')); }
    };";
    check(probe, &input(1, &[]), "complete");
    check(
        "var onLoginRequest = function () { return new Date(); };",
        &input(1, &[]),
        "error Threw(\"ReferenceError: Date is not defined",
    );
    check(
        "var onLoginRequest = function () { return Date.now(); };",
        &input(1, &[]),
        "error Threw(\"ReferenceError: Date is not defined",
    );
    check(
        "var onLoginRequest = function () { require('fs'); };",
        &input(1, &[]),
        "error Threw(\"ReferenceError: require is not defined",
    );
    check(
        "var onLoginRequest = function () { fetch('http://x'); };",
        &input(1, &[]),
        "error Threw(\"ReferenceError: fetch is not defined",
    );
    check("var onLoginRequest = function () { Math.random(); };", &input(1, &[]), "error Threw(\"TypeError: ");
    // No module is ever loaded, and no job ever runs.
    check("var onLoginRequest = function () { import('os'); };", &input(1, &[]), "complete");
    check(
        "var onLoginRequest = function () { import('os').then(function () { fail('loaded'); }); };",
        &input(1, &[]),
        "complete",
    );
    check(
        "var onLoginRequest = function () { Promise.resolve().then(function () { fail('ran'); }); };",
        &input(1, &[]),
        "complete",
    );
    // An async handler decides after it returns, i.e. never: whatever its
    // synchronous part did, it is a script error (fails closed, finding 9).
    let asynchronous = "error Asynchronous(\"onLoginRequest\")";
    check("var onLoginRequest = async function () { await 0; fail('ran'); };", &input(1, &[]), asynchronous);
    check("var onLoginRequest = async function () { fail('sync part'); };", &input(1, &[]), asynchronous);
    check("var onLoginRequest = async function () { executeStep(1); };", &input(1, &[]), asynchronous);
    check("var onLoginRequest = function () { return Promise.resolve(); };", &input(1, &[]), asynchronous);
    let async_on_success = "var onLoginRequest = function () {
        executeStep(1, { onSuccess: async function () { await 0; executeStep(2); } });
    };";
    check(async_on_success, &input(2, &[ok(1, "LOCAL", "alice")]), "error Asynchronous(\"onSuccess\")");
    check_validate("import * as os from 'os';", "error Syntax(");
    // Plain ECMAScript is there.
    let plain = "var onLoginRequest = function (context) {
        var m = new Map([['a', 1]]);
        var ok = JSON.stringify({a: [1, 2]}) == '{\"a\":[1,2]}' && /^b.b$/.test('bob') && m.get('a') === 1
            && [3, 1, 2].sort().join('') == '123' && Math.max(1, 2) == 2 && eval('1 + 1') === 2;
        if (!ok) { fail('missing built-ins'); }
    };";
    check(plain, &input(1, &[]), "complete");
}

#[test]
fn closures_work_across_the_replay() {
    let script = "var onLoginRequest = function (context) {
        var firstIdp;
        var successes = 0;
        executeStep(1, { onSuccess: function (context) { firstIdp = context.steps[1].idp; successes++; } });
        if (firstIdp != 'LOCAL') {
            return;
        }
        executeStep(2, {
            onSuccess: function (context) {
                if (successes != 1 || context.steps[1].idp != firstIdp) { fail('state lost'); }
                executeStep(3);
            }
        });
    };";
    check(script, &input(3, &[]), "execute 1");
    check(script, &input(3, &[ok(1, "corp", "a")]), "complete");
    check(script, &input(3, &[ok(1, "LOCAL", "a")]), "execute 2");
    check(script, &input(3, &[ok(1, "LOCAL", "a"), ok(2, "TOTP", "a")]), "execute 3");
    check(script, &input(3, &[ok(1, "LOCAL", "a"), ok(2, "TOTP", "a"), ok(3, "EMAIL_OTP", "a")]), "complete");
}

#[test]
fn replay_must_follow_the_recorded_path() {
    let second_first = "var onLoginRequest = function () { executeStep(2); executeStep(1); };";
    check(second_first, &input(2, &[]), "execute 2");
    check(second_first, &input(2, &[ok(2, "LOCAL", "a")]), "execute 1");
    check(
        second_first,
        &input(2, &[ok(1, "LOCAL", "a")]),
        "error Diverged(\"step 1 was done next, but the script now asks for step 2\")",
    );
    check(
        "var onLoginRequest = function () {};",
        &input(2, &[ok(1, "LOCAL", "a")]),
        "error Diverged(\"step 1 was done, but the script now finishes without asking for it\")",
    );
    // A step may be asked for again.
    check(
        "var onLoginRequest = function () { executeStep(1); executeStep(1); };",
        &input(1, &[ok(1, "LOCAL", "a")]),
        "execute 1",
    );
}

#[test]
fn context_carries_subject_and_request_parameters() {
    let script = "var onLoginRequest = function (context) {
        var before = context.currentKnownSubject;
        executeStep(1, {
            onSuccess: function (context) {
                var known = context.currentKnownSubject;
                if (context.request.params.prompt == 'login' || known.username == 'admin') {
                    executeStep(2);
                }
                if (before !== null) { fail('unexpected subject ' + before.username); }
            },
            onFail: function (context) {
                if (context.steps[1].subject !== null || context.currentKnownSubject !== null) { fail('leak'); }
                if (context.steps[1].idp != 'LOCAL' || context.steps[1].success !== false) { fail('step'); }
            }
        });
    };";
    check(script, &input(2, &[ok(1, "corp", "bob")]), "complete");
    check(script, &input(2, &[ok(1, "corp", "admin")]), "execute 2");
    check(script, &input(2, &[failed(1, "LOCAL")]), "complete");
    let mut with_prompt = input(2, &[ok(1, "corp", "bob")]);
    with_prompt.request_params.insert("prompt".into(), "login".into());
    check(script, &with_prompt, "execute 2");
    let mut known = input(2, &[ok(1, "corp", "bob")]);
    known.known_subject_username = Some("carol".into());
    check(script, &known, "fail: unexpected subject carol");
    // A step without a username has a subject whose username is null.
    let anonymous =
        CompletedStepRecord { step: 1, outcome: StepOutcome::Success, idp: "corp".into(), subject_username: None };
    check(
        "var onLoginRequest = function (context) { executeStep(1, { onSuccess: function (c) {
            if (c.steps[1].subject === null && c.currentKnownSubject === null) { fail('none'); } } }); };",
        &input(1, &[anonymous]),
        "fail: none",
    );
}

#[test]
fn messages_say_what_to_do() {
    let error = ScriptRunner::default().decide("var onLoginRequest = function () { executeStep(5); };", &input(2, &[]));
    let message = error.map_err(|e| e.to_string());
    assert_eq!(
        message,
        Err("the conditional authentication script asked for step 5, but the sign-in flow has 2 step(s), numbered from 1; the administrator must fix the script or the flow.".into())
    );
    let error = ScriptRunner::new(ScriptLimits { time_budget: Duration::from_millis(20), ..ScriptLimits::default() })
        .decide("var onLoginRequest = function () { while (true) {} };", &input(1, &[]));
    assert_eq!(error, Err(ScriptError::TimedOut { budget_ms: 20 }));
}

/// A subscriber that keeps the script's log lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<(String, tracing::Level, String)>>>);

struct MessageVisitor<'a>(&'a mut String);

impl tracing::field::Visit for MessageVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for Captured {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut message = String::new();
        event.record(&mut MessageVisitor(&mut message));
        let metadata = event.metadata();
        self.0.lock().unwrap().push((metadata.target().to_owned(), *metadata.level(), message));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn log_goes_to_tracing_until_the_script_stops() {
    let captured = Captured::default();
    let script = "Log.debug('top level');
    var onLoginRequest = function (context) {
        Log.info('user', context.steps[1] ? context.steps[1].subject.username : 'nobody', {});
        Log.error('line\\nbreak');
        Log.warn('x'.repeat(2000));
        executeStep(1);
        Log.info('never');
    };";
    let result =
        tracing::subscriber::with_default(captured.clone(), || ScriptRunner::default().decide(script, &input(1, &[])));
    assert_eq!(result, Ok(ScriptDecision::Execute(1)));
    let lines = captured.0.lock().unwrap().clone();
    let summary: Vec<(String, tracing::Level, usize)> =
        lines.iter().map(|(target, level, message)| (target.clone(), *level, message.chars().count())).collect();
    assert_eq!(lines[0], ("jit::script".into(), tracing::Level::DEBUG, "top level".into()));
    assert_eq!(lines[1], ("jit::script".into(), tracing::Level::INFO, "user nobody [object Object]".into()));
    assert_eq!(lines[2], ("jit::script".into(), tracing::Level::ERROR, "line break".into()));
    assert_eq!(summary[3], ("jit::script".into(), tracing::Level::WARN, 1001));
    assert_eq!(lines.len(), 4, "{lines:?}");

    // Silent once stopped, even when the stop is caught.
    let captured = Captured::default();
    let swallow = "var onLoginRequest = function () { try { executeStep(1); } catch (e) { Log.error('after'); } };";
    let result =
        tracing::subscriber::with_default(captured.clone(), || ScriptRunner::default().decide(swallow, &input(1, &[])));
    assert_eq!(result, Ok(ScriptDecision::Execute(1)));
    assert!(captured.0.lock().unwrap().is_empty());
}

#[test]
fn a_runner_is_shareable_and_each_call_is_fresh() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ScriptRunner>();
    // Globals set by one evaluation are gone in the next one.
    let script =
        "var onLoginRequest = function () { if (globalThis.seen) { fail('state kept'); } globalThis.seen = true; };";
    let runner = ScriptRunner::default();
    check(script, &input(1, &[]), "complete");
    assert_eq!(runner.decide(script, &input(1, &[])), Ok(ScriptDecision::Complete));
    assert_eq!(runner.decide(script, &input(1, &[])), Ok(ScriptDecision::Complete));
}

/// Failures in the middle of built-ins must leave nothing behind: QuickJS
/// aborts the process when a freed runtime still holds objects.
#[test]
fn no_failure_takes_the_process_down() {
    let fast = ScriptRunner::new(ScriptLimits { time_budget: Duration::from_millis(20), ..ScriptLimits::default() });
    let roomy = ScriptRunner::new(ScriptLimits { time_budget: Duration::from_secs(10), ..ScriptLimits::default() });
    let small = ScriptRunner::new(ScriptLimits {
        time_budget: Duration::from_secs(10),
        memory_limit: 2 << 20,
        ..ScriptLimits::default()
    });
    let cases: &[(&ScriptRunner, &str, &str)] = &[
        // Interrupted inside built-ins and callbacks.
        (&fast, "[3, 2, 1].sort(function () { while (true) {} });", "error TimedOut"),
        (&fast, "JSON.parse('[1]', function () { while (true) {} });", "error TimedOut"),
        (&fast, "new Array(10).fill(0).map(function () { while (true) {} });", "error TimedOut"),
        (&fast, "'aaaa'.replace(/a/g, function () { while (true) {} });", "error TimedOut"),
        (&fast, "new Map([[1, 2]]).forEach(function () { while (true) {} });", "error TimedOut"),
        (&fast, "var g = (function* () { yield 1; while (true) {} })(); g.next(); g.next();", "error TimedOut"),
        (
            &fast,
            "Object.defineProperty(globalThis, 'x', { get: function () { while (true) {} } }); x;",
            "error TimedOut",
        ),
        (&fast, "JSON.stringify({ toJSON: function () { while (true) {} } });", "error TimedOut"),
        // Out of memory inside built-ins.
        (
            &small,
            "var a = []; for (var i = 0; ; i++) { a.push(JSON.stringify({ i: i, s: 'x'.repeat(100) })); }",
            "error OutOfMemory",
        ),
        (&small, "var m = new Map(); for (var i = 0; ; i++) { m.set(i, { m: m }); }", "error OutOfMemory"),
        (
            &small,
            "var s = new Set(); var w = new WeakMap(); for (var i = 0; ; i++) { var k = {}; s.add(k); w.set(k, [k, s]); }",
            "error OutOfMemory",
        ),
        (&small, "var a = [[]]; for (var i = 0; ; i++) { a = [a, a.concat(a)]; }", "error OutOfMemory"),
        (&small, "'x'.repeat(1 << 20).split('').map(function (c) { return [c, c]; });", "error OutOfMemory"),
        (&small, "var o = {}; for (var i = 0; i < 1e6; i++) { o = { o: o }; } JSON.stringify(o);", "error OutOfMemory"),
        // Too deep inside built-ins.
        (&roomy, "var f = function () { return [1].map(f); }; f();", "error StackOverflow"),
        (&roomy, "var f = function () { return JSON.parse('1', f); }; f();", "error StackOverflow"),
        // Stopped, caught, and left in odd states; cycles through the surface.
        (
            &fast,
            "var g = (function* () { try { yield executeStep(1); } finally { executeStep(1); } })(); g.next();",
            "execute 1",
        ),
        (&fast, "(async function () { try { await executeStep(1); } catch (e) { await 0; } })();", "execute 1"),
        (&fast, "var p = new Promise(function (resolve) { executeStep(1); });", "execute 1"),
        (
            &fast,
            "try { executeStep(1); } catch (e) { globalThis.kept = e; context.kept = e; e.self = e; }",
            "execute 1",
        ),
        (
            &fast,
            "context.self = context; context.fn = executeStep; executeStep.context = context; executeStep(1);",
            "execute 1",
        ),
        (&fast, "Log.keep = context; fail.keep = Log; executeStep(1);", "execute 1"),
    ];
    for (runner, body, expected) in cases {
        let script = format!("var onLoginRequest = function (context) {{ {body} }};");
        let got = render(runner.decide(&script, &input(1, &[])));
        assert!(got.starts_with(expected), "{body}: expected {expected:?}…, got {got:?}");
    }
}
