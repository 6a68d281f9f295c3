//! Regressions: each file in scenarios/regressions/ is a scenario that once went wrong (most
//! were found by `wsgilab explore` and shrunk). Each must now satisfy every invariant and its
//! own expectations, and replay identically twice (the same trace, byte for byte). They are
//! not teaching scenarios, so they have no snapshots.

use std::path::Path;

use sim::explore::check_scenario;
use sim::scenario::expect::expectation_failures;
use sim::scenario::parse;
use sim::scenario::run::run_scenario;

#[test]
fn every_regression_scenario_satisfies_every_invariant_and_replays_identically() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    files.sort();
    let mut failures = Vec::new();
    for path in &files {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).expect("readable");
        let scenario = parse(&text, &name).unwrap_or_else(|e| panic!("{e}"));
        let checked = check_scenario(&scenario);
        for v in &checked.violations {
            failures.push(format!("{name}: {v}"));
        }
        for f in expectation_failures(&scenario, &checked.runs) {
            failures.push(format!("{name}: {f}"));
        }
        let again = run_scenario(&scenario, scenario.seed);
        let same = serde_json::to_string(&checked.runs).ok() == serde_json::to_string(&again).ok();
        if !same {
            failures.push(format!("{name}: two replays differ"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
