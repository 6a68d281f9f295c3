//! `wsgilab replay`: runs scenarios in the simulated world and shows what happened — the
//! bundled ones (embedded in the binary from `scenarios/`) or any scenario file.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use sim::scenario::expect::expectation_failures;
use sim::scenario::explain::key_point;
use sim::scenario::html::render_html;
use sim::scenario::record::outcome_summary;
use sim::scenario::record::RunOutput;
use sim::scenario::render::{render_json, render_text};
use sim::scenario::run::run_scenario;
use sim::scenario::{parse, Scenario};

include!(concat!(env!("OUT_DIR"), "/scenarios.rs"));

#[derive(Parser, Debug)]
#[command(
    name = "wsgilab replay",
    about = "Replay scenarios in the simulated world and explain what happened",
    after_help = "With no SCENARIO, every bundled scenario runs in order and each gets a short summary.\n\
                  A SCENARIO is a .toml file, or a bundled scenario's name or number (`07`, `all-workers-busy`)."
)]
struct ReplayArgs {
    /// Scenario files or bundled scenario names.
    scenarios: Vec<String>,
    /// The seed (default: the scenario's own).
    #[arg(long)]
    seed: Option<u64>,
    /// text: timeline, requests, log and explanation; json: the raw trace.
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    format: String,
    /// Write the replay as a self-contained HTML page (a timeline chart, the requests, the
    /// log) to FILE instead of printing it; needs exactly one SCENARIO.
    #[arg(long, value_name = "FILE")]
    html: Option<std::path::PathBuf>,
    /// Run the scenario for real on this machine (its files in a temporary root, the real
    /// server, real clients on loopback, real signals) instead of in the simulation.
    #[arg(long)]
    real: bool,
}

/// A scenario to run: its name and text.
struct Source {
    name: String,
    origin: String,
    text: String,
}

pub fn replay(args: &[std::ffi::OsString]) -> ExitCode {
    let args: ReplayArgs = match crate::parse_lab_args("replay", args) {
        Ok(args) => args,
        Err(code) => return code,
    };
    if args.html.is_some() && args.scenarios.len() != 1 {
        eprintln!(
            "wsgilab replay: --html writes the page of one scenario: give exactly one SCENARIO (got {})",
            args.scenarios.len()
        );
        return ExitCode::from(2);
    }
    let summary_mode = args.scenarios.is_empty();
    if args.real && summary_mode {
        eprintln!("wsgilab replay: --real runs one scenario at a time: name it, e.g. wsgilab replay --real 08");
        return ExitCode::from(2);
    }
    let sources = if summary_mode {
        BUNDLED
            .iter()
            .map(|(name, text)| Source {
                name: name.to_string(),
                origin: format!("scenarios/{name}.toml"),
                text: text.to_string(),
            })
            .collect()
    } else {
        let mut sources = Vec::new();
        for wanted in &args.scenarios {
            match find(wanted) {
                Ok(source) => sources.push(source),
                Err(message) => {
                    eprintln!("wsgilab replay: {message}");
                    return ExitCode::from(2);
                }
            }
        }
        sources
    };
    let mut failed = 0;
    for source in &sources {
        let scenario = match parse(&source.text, &source.origin) {
            Ok(scenario) => scenario,
            Err(e) => {
                eprintln!("wsgilab replay: {e}");
                return ExitCode::from(2);
            }
        };
        let seed = args.seed.unwrap_or(scenario.seed);
        let (scenario, runs) = if args.real {
            match crate::real::replay(&source.origin, scenario, seed) {
                Ok(done) => done,
                Err(code) => return code,
            }
        } else {
            let runs = run_scenario(&scenario, seed);
            (scenario, runs)
        };
        let failures = expectation_failures(&scenario, &runs);
        if summary_mode {
            print_summary(&source.name, &scenario, &runs, &failures);
        } else if let Some(file) = &args.html {
            let page = render_html(&source.name, &scenario, &runs);
            if let Err(e) = std::fs::write(file, page) {
                eprintln!(
                    "wsgilab replay: cannot write the HTML page to {}: {e}",
                    file.display()
                );
                return ExitCode::from(1);
            }
            println!(
                "wsgilab replay: wrote {} (open it in a browser)",
                file.display()
            );
        } else if args.format == "json" {
            println!("{}", render_json(&source.name, &scenario, &runs));
        } else {
            print!("{}", render_text(&source.name, &scenario, &runs));
        }
        if !failures.is_empty() {
            failed += 1;
            eprintln!(
                "\n{}: {} expectation(s) not met:",
                source.origin,
                failures.len()
            );
            for f in &failures {
                eprintln!("  - {f}");
            }
        }
    }
    if summary_mode {
        println!(
            "{} scenarios replayed, {} with unmet expectations. Replay one in full: wsgilab replay 07 (or a path to a .toml file); --seed N changes the seed.",
            sources.len(),
            failed
        );
    }
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The scenario named `wanted`: a file, or a bundled one by name or number.
fn find(wanted: &str) -> Result<Source, String> {
    let path = Path::new(wanted);
    if path.extension().is_some_and(|e| e == "toml") || path.exists() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the scenario file {wanted}: {e}"))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| wanted.to_string());
        return Ok(Source {
            name,
            origin: wanted.to_string(),
            text,
        });
    }
    let matches: Vec<&(&str, &str)> = BUNDLED
        .iter()
        .filter(|(name, _)| {
            *name == wanted
                || name
                    .split_once('-')
                    .is_some_and(|(n, rest)| n == wanted || rest == wanted)
        })
        .collect();
    match matches.as_slice() {
        [(name, text)] => Ok(Source {
            name: name.to_string(),
            origin: format!("scenarios/{name}.toml"),
            text: text.to_string(),
        }),
        _ => Err(format!(
            "no scenario file or bundled scenario named {wanted:?}; the bundled ones are: {}",
            BUNDLED
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn print_summary(name: &str, scenario: &Scenario, runs: &[RunOutput], failures: &[String]) {
    println!(
        "{name}: {}{}",
        scenario.title,
        if failures.is_empty() {
            ""
        } else {
            "  [EXPECTATIONS NOT MET]"
        }
    );
    for run in runs {
        let label = run
            .variant
            .as_deref()
            .map(|v| format!("[{v}] "))
            .unwrap_or_default();
        println!("    {label}requests: {}", outcome_summary(&run.requests));
        if let Some(point) = key_point(scenario, run) {
            println!("    {label}{}", first_sentence(&point));
        }
    }
    println!();
}

fn first_sentence(text: &str) -> String {
    let cut = text.find(". ").map_or(text.len(), |i| i + 1);
    text[..cut].to_string()
}
