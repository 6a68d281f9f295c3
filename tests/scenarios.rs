//! Every bundled scenario replays to the text in its snapshot (`snapshots/`), replays byte for
//! byte the same a second time, and meets the expectations written in it.
//!
//! A changed snapshot is a changed behaviour: review it with `cargo insta review` and say why
//! it changed. CI never writes snapshots (insta does not under `CI=true`).

use sim::scenario::expect::check;
use sim::scenario::parse;
use sim::scenario::render::{render_json, render_text};
use sim::scenario::run::run_scenario;

#[test]
fn replay() {
    insta::glob!(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"),
        "*.toml",
        |path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(path).unwrap();
            let scenario =
                parse(&text, &format!("scenarios/{name}.toml")).unwrap_or_else(|e| panic!("{e}"));
            let runs = run_scenario(&scenario, scenario.seed);
            let again = run_scenario(&scenario, scenario.seed);
            assert_eq!(
                render_json(&name, &scenario, &runs),
                render_json(&name, &scenario, &again),
                "{name}: the second replay's trace differs from the first"
            );
            let mut failures = Vec::new();
            for run in &runs {
                let variant = scenario
                    .variants
                    .iter()
                    .find(|v| Some(&v.name) == run.variant.as_ref());
                for expect in
                    std::iter::once(&scenario.expect).chain(variant.and_then(|v| v.expect.as_ref()))
                {
                    failures.extend(check(expect, run));
                }
            }
            assert!(
                failures.is_empty(),
                "{name}: expectations not met:\n{}",
                failures.join("\n")
            );
            insta::with_settings!({
                snapshot_path => "../snapshots",
                prepend_module_to_snapshot => false,
                omit_expression => true,
            }, {
                insta::assert_snapshot!(name.clone(), render_text(&name, &scenario, &runs));
            });
        }
    );
}

/// The annotated example in scenarios/README.md is a working scenario that meets its own
/// expectations, so the documentation cannot drift from the format.
#[test]
fn the_readme_example_is_a_valid_scenario() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/README.md"))
            .unwrap();
    let start = readme.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let scenario =
        parse(&readme[start..end], "scenarios/README.md").unwrap_or_else(|e| panic!("{e}"));
    for run in run_scenario(&scenario, scenario.seed) {
        let failures = check(&scenario.expect, &run);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
