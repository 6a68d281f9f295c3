//! Exploration: hand-written scenarios show the failures we know of; this finds the others.
//! A seed builds a whole scenario ([`gen`]), the scenario runs in the simulated world, and
//! every run's trace is checked against invariants that must hold whatever the scenario
//! ([`invariants`]). A violation shrinks to a small scenario, written as a TOML file that
//! `wsgilab replay` reproduces byte for byte: the seed is the whole bug report.
//!
//! "Seed N" always means the same scenario: the generator's randomness is proptest's ChaCha
//! RNG seeded from N alone, and the run itself is deterministic.

pub mod gen;
pub mod invariants;

use std::panic::{catch_unwind, AssertUnwindSafe};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

pub use invariants::Violation;

use crate::scenario::record::RunOutput;
use crate::scenario::run::run_scenario;
use crate::scenario::Scenario;

/// The generator's RNG for seed `n`: 32 bytes drawn from `n` by splitmix64, so that nearby
/// seeds give unrelated scenarios.
fn rng_for(n: u64) -> TestRng {
    let mut state = n;
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

fn runner_for(n: u64) -> TestRunner {
    TestRunner::new_with_rng(Config::default(), rng_for(n))
}

/// The scenario of seed `n`, with the value tree that shrinks it.
fn tree_for(n: u64) -> Box<dyn ValueTree<Value = Scenario>> {
    let mut runner = runner_for(n);
    let tree = gen::scenario()
        .new_tree(&mut runner)
        // The strategy has no filters, so drawing a value cannot be rejected.
        .expect("the scenario strategy has no filters");
    Box::new(tree)
}

/// The scenario seed `n` stands for.
pub fn scenario_for_seed(n: u64) -> Scenario {
    named(tree_for(n).current(), n)
}

fn named(mut scenario: Scenario, n: u64) -> Scenario {
    scenario.title = format!("explore seed {n}");
    scenario
}

/// What checking one scenario found.
#[derive(Clone, Debug)]
pub struct Checked {
    pub runs: Vec<RunOutput>,
    pub violations: Vec<Violation>,
}

/// Runs a scenario and checks every invariant on each run; a panic anywhere in the run is a
/// violation too.
pub fn check_scenario(scenario: &Scenario) -> Checked {
    let ran = catch_unwind(AssertUnwindSafe(|| run_scenario(scenario, scenario.seed)));
    match ran {
        Ok(runs) => {
            let violations = runs
                .iter()
                .flat_map(|run| invariants::check_run(scenario, run))
                .collect();
            Checked { runs, violations }
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into());
            Checked {
                runs: Vec::new(),
                violations: vec![Violation {
                    invariant: "no_panic",
                    at_us: 0,
                    message: format!("the run panicked: {message}"),
                }],
            }
        }
    }
}

/// One seed's result.
#[derive(Clone, Debug)]
pub struct SeedResult {
    pub seed: u64,
    pub scenario: Scenario,
    pub violations: Vec<Violation>,
}

/// Runs seed `n` and checks it.
pub fn run_seed(n: u64) -> SeedResult {
    let scenario = scenario_for_seed(n);
    let checked = check_scenario(&scenario);
    SeedResult {
        seed: n,
        scenario,
        violations: checked.violations,
    }
}

/// Shrinks seed `n`'s scenario while it still violates the invariant that it violated first;
/// the smallest such scenario and its violations. At most `budget` runs.
pub fn shrink_seed(n: u64, budget: usize) -> (Scenario, Vec<Violation>) {
    let mut tree = tree_for(n);
    let first = check_scenario(&named(tree.current(), n));
    let Some(wanted) = first.violations.first().map(|v| v.invariant) else {
        return (named(tree.current(), n), first.violations);
    };
    let mut best = (named(tree.current(), n), first.violations);
    let mut runs = 0;
    // proptest's shrinking loop: simplify while the failure remains; when a simplification
    // loses it, complicate back a little and try another.
    if tree.simplify() {
        loop {
            runs += 1;
            let candidate = named(tree.current(), n);
            let checked = check_scenario(&candidate);
            let still = checked.violations.iter().any(|v| v.invariant == wanted);
            let more = if still {
                best = (candidate, checked.violations);
                tree.simplify()
            } else {
                tree.complicate()
            };
            if !more || runs >= budget {
                break;
            }
        }
    }
    best
}

/// The scenario as a TOML file that `wsgilab replay` reads back to the same scenario.
pub fn to_toml(scenario: &Scenario) -> Result<String, String> {
    let text = toml::to_string(scenario).map_err(|e| e.to_string())?;
    let back = crate::scenario::parse(&text, "generated.toml").map_err(|e| e.to_string())?;
    // Debug covers every field: a scenario that reads back differently is not written.
    if format!("{back:?}") != format!("{scenario:?}") {
        return Err("the scenario does not read back as written".into());
    }
    Ok(text)
}
