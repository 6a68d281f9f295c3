//! `wsgilab explore`: runs generated scenarios, seed after seed, and checks every invariant on
//! each run (sim::explore). A violation is shrunk to a small scenario, written to a TOML file,
//! and reported with the two commands that reproduce it. The progress bar and the
//! seeds-per-second figure use the wall clock; nothing inside a seed's run does.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use sim::explore::{check_scenario, scenario_for_seed, shrink_seed, to_toml, Violation};

#[derive(Parser, Debug)]
#[command(
    name = "wsgilab explore",
    about = "Run generated scenarios and check the simulation's invariants on each",
    after_help = "Seed N always builds the same scenario. A violation is shrunk and written as a scenario file \
                  that `wsgilab replay FILE` reproduces byte for byte."
)]
struct ExploreArgs {
    /// How many seeds to run (default 100, unless --time is given).
    #[arg(long, conflicts_with = "time")]
    seeds: Option<u64>,
    /// Run seeds for this long instead: `30s`, `5m`, `1h`, `500ms`.
    #[arg(long, value_parser = parse_duration)]
    time: Option<Duration>,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the shrunk scenarios of violations.
    #[arg(long, default_value = "explore-failures")]
    out: PathBuf,
    /// Stop at the first violation (default: run every seed, shrink the first three).
    #[arg(long)]
    stop: bool,
    /// Also write each seed's scenario (unshrunk) to the --out directory, to replay it.
    #[arg(long)]
    save: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        format!(
            "{text:?} is not a duration: write a whole number and a unit, e.g. 30s, 5m, 1h, 500ms"
        )
    })?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: use ms, s, m or h (e.g. 30s)"
            ))
        }
    };
    if d.is_zero() {
        return Err("the duration must be more than zero".into());
    }
    Ok(d)
}

/// Violations shrunk and written per run of the command (each takes up to a few hundred runs).
const SHRINK_AT_MOST: usize = 3;

pub fn explore(args: &[std::ffi::OsString]) -> ExitCode {
    let args: ExploreArgs = match crate::parse_lab_args("explore", args) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let count = match (args.seeds, args.time) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(100),
    };
    let bar = match count {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} seeds ({per_sec}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut slowest: Option<(u64, Duration)> = None;
    let mut failing: Vec<(u64, Vec<Violation>)> = Vec::new();
    let mut ran = 0u64;
    loop {
        let seed = args.seed.saturating_add(ran);
        let done = match (count, args.time) {
            (Some(n), _) => ran >= n,
            (None, Some(limit)) => started.elapsed() >= limit,
            (None, None) => true,
        };
        if done {
            break;
        }
        let scenario = scenario_for_seed(seed);
        // Written before the run, so that a seed that hangs or crashes the process is kept.
        if args.save {
            let path = args.out.join(format!("seed-{seed}-unshrunk.toml"));
            let saved = to_toml(&scenario).and_then(|text| {
                std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
                std::fs::write(&path, text).map_err(|e| e.to_string())
            });
            match saved {
                Ok(()) => bar.suspend(|| println!("seed {seed}: written to {}", path.display())),
                Err(e) => bar.suspend(|| println!("seed {seed}: not written: {e}")),
            }
        }
        let t = Instant::now();
        let result = check_scenario(&scenario);
        let took = t.elapsed();
        if slowest.is_none_or(|(_, d)| took > d) {
            slowest = Some((seed, took));
        }
        ran += 1;
        bar.inc(1);
        if !result.violations.is_empty() {
            // Printed whether or not the bar is drawn (it is not when stderr is no terminal).
            bar.suspend(|| {
                println!(
                    "seed {seed}: {} violation(s), first: {}",
                    result.violations.len(),
                    result.violations[0]
                )
            });
            failing.push((seed, result.violations));
            bar.set_message(format!("{} failing", failing.len()));
            if args.stop {
                break;
            }
        }
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    println!(
        "{ran} seeds ({}..{}) in {:.1} s: {:.1} seeds/s; {} with violations",
        args.seed,
        args.seed.saturating_add(ran.saturating_sub(1)),
        elapsed.as_secs_f64(),
        ran as f64 / elapsed.as_secs_f64().max(1e-9),
        failing.len()
    );
    if let Some((seed, took)) = slowest {
        println!(
            "slowest seed: {seed} ({:.1} ms)",
            took.as_secs_f64() * 1000.0
        );
    }
    for (seed, violations) in failing.iter().take(SHRINK_AT_MOST) {
        report(*seed, violations, &args.out);
    }
    if failing.len() > SHRINK_AT_MOST {
        println!(
            "\n{} more failing seed(s), not shrunk: {}",
            failing.len() - SHRINK_AT_MOST,
            failing[SHRINK_AT_MOST..]
                .iter()
                .map(|(s, _)| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if failing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The violation report: the seed, what broke, the shrunk scenario file and how to replay it.
fn report(seed: u64, violations: &[Violation], dir: &std::path::Path) {
    println!("\n=== seed {seed}: {} violation(s) ===", violations.len());
    for v in violations {
        println!("  {v}");
    }
    let (scenario, shrunk) = shrink_seed(seed, 300);
    println!(
        "shrunk scenario: {}",
        scenario.command.as_deref().unwrap_or("")
    );
    for v in &shrunk {
        println!("  {v}");
    }
    let path = dir.join(format!("seed-{seed}.toml"));
    let written = to_toml(&scenario).and_then(|text| {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let header = format!(
            "# Found by `wsgilab explore --seed {seed} --seeds 1`, shrunk; it violates: {}\n",
            shrunk
                .iter()
                .map(|v| v.invariant)
                .collect::<Vec<_>>()
                .join(", ")
        );
        std::fs::write(&path, header + &text).map_err(|e| e.to_string())
    });
    match written {
        Ok(()) => println!(
            "written to {}\nreplay it:  wsgilab replay {}\nor rerun:   wsgilab explore --seed {seed} --seeds 1",
            path.display(),
            path.display()
        ),
        Err(e) => println!(
            "the shrunk scenario could not be written ({e}); rerun: wsgilab explore --seed {seed} --seeds 1"
        ),
    }
}
