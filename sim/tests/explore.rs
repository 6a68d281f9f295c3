//! Exploration in `cargo test`: a fixed slice of seeds must satisfy every invariant, a seed
//! always builds the same scenario, and every generated scenario survives being written as
//! TOML and read back. `wsgilab explore` runs many more; proptest's own loop runs a few more
//! here, so that a failure shrinks and lands in explore.proptest-regressions.

use proptest::prelude::*;
use sim::explore::{check_scenario, gen, run_seed, scenario_for_seed, to_toml};

/// Seeds checked on every `cargo test` (each runs a few virtual seconds).
const SLICE: std::ops::Range<u64> = 0..48;

#[test]
fn a_fixed_slice_of_seeds_satisfies_every_invariant() {
    let mut failures = Vec::new();
    for seed in SLICE {
        let result = run_seed(seed);
        for v in &result.violations {
            failures.push(format!("seed {seed}: {v}"));
        }
    }
    assert!(
        failures.is_empty(),
        "replay with `wsgilab explore --seed N --seeds 1`:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_seed_always_means_the_same_scenario() {
    for seed in [0, 7, 123_456_789] {
        assert_eq!(
            format!("{:?}", scenario_for_seed(seed)),
            format!("{:?}", scenario_for_seed(seed))
        );
    }
    assert_ne!(
        format!("{:?}", scenario_for_seed(1).clients),
        format!("{:?}", scenario_for_seed(2).clients)
    );
}

#[test]
fn generated_scenarios_read_back_as_written() {
    for seed in 0..200 {
        let scenario = scenario_for_seed(seed);
        if let Err(e) = to_toml(&scenario) {
            panic!("seed {seed}: {e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn random_scenarios_satisfy_every_invariant(scenario in gen::scenario()) {
        let checked = check_scenario(&scenario);
        prop_assert!(
            checked.violations.is_empty(),
            "{}\n\nreplay with `wsgilab replay FILE`, FILE holding:\n{}",
            checked.violations.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n"),
            to_toml(&scenario).unwrap_or_else(|e| format!("(not writable as TOML: {e})"))
        );
    }
}
