//! A scenario's expectations checked against its runs: the outcome counts, log lines that must
//! or must not appear, the exit status and the trace events that must occur. `replay` exits
//! non-zero on a mismatch; the tests check the bundled and regression scenarios with it.

use super::record::{outcome_counts, outcome_summary, server_log, RunOutput};
use super::{ExitExpectation, Expect, Scenario};

/// Every unmet expectation of every run, each prefixed with its variant.
pub fn expectation_failures(scenario: &Scenario, runs: &[RunOutput]) -> Vec<String> {
    let mut failures = Vec::new();
    for run in runs {
        let variant_expect = scenario
            .variants
            .iter()
            .find(|v| Some(&v.name) == run.variant.as_ref())
            .and_then(|v| v.expect.as_ref());
        for expect in std::iter::once(&scenario.expect).chain(variant_expect) {
            for f in check(expect, run) {
                failures.push(match &run.variant {
                    Some(v) => format!("[{v}] {f}"),
                    None => f,
                });
            }
        }
    }
    failures
}

/// Every way the run differs from `expect`, in words; empty when it matches.
pub fn check(expect: &Expect, run: &RunOutput) -> Vec<String> {
    let mut failures = Vec::new();
    let counts = outcome_counts(&run.requests);
    for (outcome, want) in &expect.outcomes {
        let got = counts.get(outcome).copied().unwrap_or(0);
        if got != *want {
            failures.push(format!(
                "expected {want} request(s) with outcome {outcome}, got {got} (all outcomes: {})",
                outcome_summary(&run.requests)
            ));
        }
    }
    let log = server_log(&run.events);
    for wanted in &expect.log_contains {
        if !log.iter().any(|l| l.contains(wanted.as_str())) {
            failures.push(format!(
                "expected a log line containing {wanted:?}; none did"
            ));
        }
    }
    for unwanted in &expect.log_lacks {
        if let Some(line) = log.iter().find(|l| l.contains(unwanted.as_str())) {
            failures.push(format!(
                "expected no log line containing {unwanted:?}; got {line:?}"
            ));
        }
    }
    match (&expect.exit_status, run.exit_status) {
        (Some(ExitExpectation::Code(want)), got) if got != Some(*want) => failures.push(format!(
            "expected the server to exit with status {want}; {}",
            got.map_or("it was still running".to_string(), |g| format!(
                "it exited with {g}"
            ))
        )),
        (Some(ExitExpectation::Word(_)), Some(got)) => failures.push(format!(
            "expected the server to be running at the end; it exited with status {got}"
        )),
        _ => {}
    }
    for kind in &expect.events {
        if !run.events.iter().any(|e| e.kind == *kind) {
            failures.push(format!(
                "expected a \"{kind}\" event in the trace; there was none"
            ));
        }
    }
    failures
}
