//! The lab's explanation of a run made for real (`replay --real`). In a file of its own so that
//! its real run never shares the machine with sim_vs_real's, whose timings it would disturb.

mod common;

use std::process::Command;

#[test]
fn the_explanation_of_a_real_run_without_a_balancer_never_mentions_one() {
    let output = Command::new(common::wsgilab())
        .args(["replay", "--real", "08"])
        .output()
        .unwrap();
    assert!(matches!(output.status.code(), Some(0 | 1)), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let explanation = text
        .split("--- what happened ---")
        .nth(1)
        .unwrap_or_else(|| panic!("no explanation:\n{text}"));
    assert!(explanation.contains("Where the time went"), "{explanation}");
    assert!(!explanation.contains("balancer"), "{explanation}");
}
