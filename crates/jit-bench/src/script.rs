//! Evaluation time of conditional authentication scripts: the seeds' script
//! through `jit_script::ScriptRunner`, exactly as the sign-in engine
//! runs it at every step of a scripted flow (a fresh engine per decision,
//! replaying the steps done so far).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use jit_domain::flow::SKIP_MFA_FOR_FEDERATED_SCRIPT;
use jit_script::{CompletedStepRecord, ScriptDecision, ScriptInput, ScriptRunner, StepOutcome};

use crate::stats::percentile;

/// One measured sign-in step.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptTiming {
    /// What had happened before the decision.
    pub case: &'static str,
    /// What the script decided.
    pub decision: ScriptDecision,
    /// Evaluations measured.
    pub runs: usize,
    /// Median evaluation time.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

/// The decisions of a two-step flow under the seeds' script.
fn cases() -> Vec<(&'static str, ScriptInput, ScriptDecision)> {
    let done = |idp: &str| CompletedStepRecord {
        step: 1,
        outcome: StepOutcome::Success,
        idp: idp.to_owned(),
        subject_username: Some("alice".to_owned()),
    };
    let input =
        |completed: Vec<CompletedStepRecord>| ScriptInput { steps_configured: 2, completed, ..ScriptInput::default() };
    vec![
        ("sign-in starts", input(Vec::new()), ScriptDecision::Execute(1)),
        ("after LOCAL", input(vec![done("LOCAL")]), ScriptDecision::Execute(2)),
        ("after a federated step", input(vec![done("corp")]), ScriptDecision::Complete),
    ]
}

/// Evaluates each case `runs` times; fails if a decision is not the
/// expected one.
pub fn measure(runs: usize) -> Result<Vec<ScriptTiming>> {
    let runner = ScriptRunner::default();
    let mut timings = Vec::new();
    for (case, input, expected) in cases() {
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            let decision = runner.decide(SKIP_MFA_FOR_FEDERATED_SCRIPT, &input)?;
            samples.push(started.elapsed());
            if decision != expected {
                bail!("the seeds' script decided {decision:?} {case}, expected {expected:?}");
            }
        }
        samples.sort();
        let (Some(p50), Some(p99)) = (percentile(&samples, 50.0), percentile(&samples, 99.0)) else {
            bail!("no script evaluations measured");
        };
        timings.push(ScriptTiming { case, decision: expected, runs, p50, p99 });
    }
    Ok(timings)
}

/// The timings as a table.
pub fn table(timings: &[ScriptTiming]) -> String {
    let mut out =
        format!("{:<24}  {:<12}  {:>6}  {:>8}  {:>8}\n", "script step", "decision", "runs", "p50 µs", "p99 µs");
    out.push_str(&format!(
        "{}  {}  {}  {}  {}\n",
        "-".repeat(24),
        "-".repeat(12),
        "-".repeat(6),
        "-".repeat(8),
        "-".repeat(8)
    ));
    for t in timings {
        let decision = match &t.decision {
            ScriptDecision::Execute(step) => format!("step {step}"),
            ScriptDecision::Complete => "complete".to_owned(),
            other => format!("{other:?}"),
        };
        out.push_str(&format!(
            "{:<24}  {:<12}  {:>6}  {:>8.0}  {:>8.0}\n",
            t.case,
            decision,
            t.runs,
            t.p50.as_secs_f64() * 1e6,
            t.p99.as_secs_f64() * 1e6
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_script_decides_as_the_seeds_say() {
        let timings = measure(3).unwrap();
        let decisions: Vec<_> = timings.iter().map(|t| t.decision.clone()).collect();
        assert_eq!(decisions, [ScriptDecision::Execute(1), ScriptDecision::Execute(2), ScriptDecision::Complete]);
        assert!(table(&timings).contains("after LOCAL"));
    }
}
