//! Sim versus real: every bundled scenario marked `real = true` is replayed in the simulation
//! and run for real (`wsgilab replay --real --format json`: its files in a temporary root, the
//! real server, real loopback clients, real signals), and the two must agree, run by run:
//!
//! - the server's fate: still running at the end, or exited with the same status;
//! - every request's outcome class (`200`, `refused`, `reset`, `no_response`, ...), whether its
//!   `connect()` waited for a SYN retransmission, and its connect and total times, within
//!   [`tolerance`] (generous: the machine is shared and noisy);
//! - the key log lines: the scenario's `expect.log_contains` (and none of `log_lacks`), plus
//!   the lines listed in [`KEY_LINES`].
//!
//! Requests are compared per client group, sorted by total time: the clients of one group are
//! identical by construction, and which of several identical connections the kernel lets in
//! first is decided by timers the scenario does not fix (scenario 08's half-open connections
//! are served in a different order from run to run) — so a group's requests must agree as a
//! set: its k-th fastest request with the other world's k-th fastest, outcome, SYN retry and
//! times.
//!
//! A disagreement that is understood but not fixed is listed in [`KNOWN`] with its reason; the
//! test then fails if it goes away, so that the entry is removed when the model is fixed.
//!
//! Scenarios run concurrently (cargo's test threads) except those whose times depend on having
//! the CPU: they run alone.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::RwLock;

use serde_json::Value;
use sim::scenario::phases::request_phases;
use sim::scenario::record::RunOutput;
use sim::scenario::run::run_scenario;
use sim::scenario::{parse, Scenario};

/// The scenarios that run for real; `every_real_scenario_is_compared` keeps it in step with
/// the `real = true` marks of `scenarios/*.toml`.
const REAL: &[&str] = &[
    "01-uwsgi-no-arguments",
    "02-hello-world",
    "03-runserver-versus-workers",
    "04-wrong-directory",
    "05-virtualenv-missing",
    "07-all-workers-busy",
    "08-accept-queue-full",
    "09-cpu-bound",
    "10-io-bound",
    "11-harakiri",
    "12-worker-segfault",
    "13-max-requests",
    "14-request-head-too-big",
    "15-slow-clients",
    "16-client-disconnects",
    "17-preforking-import-time-state",
    "18-signals",
    "19-port-in-use",
    "22-placeholder-first-value",
];

/// Scenarios whose times need the machine to themselves: CPU time (03, 09), or the kernel's
/// SYN retransmissions landing in one timer tick (08 — on the loaded machine two retried SYNs
/// found the queue still full and got in only at their third retry, 3.08 s instead of 1.01 s).
/// They run with nothing else of this test beside them, and their times count only on an
/// idle machine (outcomes, SYN retries and log lines always do).
const NEEDS_THE_CPU: &[&str] = &[
    "03-runserver-versus-workers",
    "08-accept-queue-full",
    "09-cpu-bound",
];

/// Scenarios whose real runs vary from run to run by whole retransmission intervals: 08's
/// retried SYNs arrive the very moment a worker frees a slot of the accept queue (a 1 s app,
/// 1 s SYN retransmissions), and its half-open connections get in with whichever
/// retransmission finds room. On this machine, idle, consecutive real runs gave: all nine
/// retried clients connected at 1.00–1.04 s and the responses came in pairs to 8.1 s (as in
/// ARCHITECTURE.md and the model); three of them at 3.08 s instead; and once three connections were
/// accepted before their request bytes, which were still being retransmitted, arrived, so
/// --socket-timeout closed them without a response and the rest were answered up to 18.5 s.
/// For these the test holds what every run showed — the same clients connect at once (7) and
/// the same ones wait for a SYN retry (9) — and prints the other differences instead of
/// failing on them. Why the real kernel sometimes leaves a request's bytes unacknowledged
/// past --socket-timeout is open (the model delivers them with the retransmission that finds
/// room).
const VARIES_FOR_REAL: &[&str] = &["08-accept-queue-full"];

/// Log lines (substrings) both worlds must print, beyond the scenarios' own expectations.
const KEY_LINES: &[(&str, &[&str])] = &[
    ("02-hello-world", &["*** Operational MODE: preforking ***"]),
    ("07-all-workers-busy", &["spawned uWSGI worker 2"]),
    (
        "08-accept-queue-full",
        &["your server socket listen backlog is limited to 4 connections"],
    ),
    (
        "12-worker-segfault",
        // Not which worker: the one that wins the accept() race.
        &["died, killed by signal 11"],
    ),
    ("13-max-requests", &["...The work of process"]),
    (
        "15-slow-clients",
        &["GET / => generated 2 bytes", "(HTTP/1.1 200)"],
    ),
    (
        "17-preforking-import-time-state",
        &["GET / => generated 1 bytes"],
    ),
];

/// Disagreements understood and not fixed: (scenario, a substring of the mismatch, why).
/// Each must still show, or the test fails (remove the entry when the model is fixed).
///
/// None at present. One difference is inside the tolerance and worth knowing:
/// - 08: the simulation lets the half-open connections in by client port, all retransmitting in
///   one timer tick; the real kernel in an order that changes from run to run (hence the
///   per-group comparison), and one of the nine SYN retries comes ~35 ms before the others.
///
/// (17's preforked workers' queries on the shared connection overlapped in the model while
/// the real database answered them in turn — 59, 110, 160, 211 ms; the model now serialises
/// them too: 54, 104, 154, 204 ms.)
const KNOWN: &[(&str, &str, &str)] = &[];

/// How far a real time may be from the simulated one: a quarter, and at least 300 ms. On this
/// shared 2-core machine, with other builds running, a real 2 s sleep took 2.07 s and a
/// graceful stop's last step came 160 ms after the model's; the lessons the scenarios time
/// (a SYN retry's 1 s, an app's 1–2 s, harakiri's 2–3 s) stay far apart at that tolerance.
fn tolerance(sim_us: u64) -> u64 {
    (sim_us / 4).max(300_000)
}

/// How idle the machine's CPUs must be for a CPU-bound scenario's times to be compared.
const MIN_IDLE: f64 = 0.85;

/// The fraction of all CPUs' time spent idle over `span` (from /proc/stat).
fn idle_fraction(span: std::time::Duration) -> f64 {
    let sample = || -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu = stat.lines().next()?;
        let fields: Vec<u64> = cpu
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
        Some((idle, fields.iter().take(8).sum()))
    };
    let Some((idle0, total0)) = sample() else {
        return 0.0;
    };
    std::thread::sleep(span);
    match sample() {
        Some((idle1, total1)) if total1 > total0 => {
            (idle1 - idle0) as f64 / (total1 - total0) as f64
        }
        _ => 0.0,
    }
}

/// CPU-bound scenarios take this for writing; the others for reading.
static CPU: RwLock<()> = RwLock::new(());

fn compare(name: &str) {
    let _turn = if NEEDS_THE_CPU.contains(&name) {
        Box::new(CPU.write().unwrap_or_else(|e| e.into_inner())) as Box<dyn std::any::Any>
    } else {
        Box::new(CPU.read().unwrap_or_else(|e| e.into_inner())) as Box<dyn std::any::Any>
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let scenario = parse(&text, &path.display().to_string()).unwrap_or_else(|e| panic!("{e}"));
    assert!(scenario.real, "{name} is not marked real = true");
    let simulated = run_scenario(&scenario, scenario.seed);
    // The simulation gives the scenario's machine to the server alone; these scenarios' times
    // say something only if this (shared) machine's cores are idle enough.
    let times_count = if NEEDS_THE_CPU.contains(&name) {
        let idle = idle_fraction(std::time::Duration::from_millis(500));
        let enough = idle >= MIN_IDLE;
        if !enough {
            eprintln!(
                "{name}: this machine's CPUs are only {:.0}% idle (others are using them): its times are not compared this time; outcomes, SYN retries and log lines are",
                idle * 100.0
            );
        }
        enough
    } else {
        true
    };
    let started = std::time::Instant::now();
    let output = Command::new(common::wsgilab())
        .args(["replay", "--real", "--format", "json"])
        .arg(&path)
        .output()
        .expect("run wsgilab replay --real");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // 0: expectations met; 1: not met (the comparison below says how); 2: could not run.
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{name}: wsgilab replay --real failed ({}):\n{stderr}",
        output.status
    );
    let real: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{name}: the real run's JSON does not parse: {e}\n{stderr}"));
    let real_runs = real["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(real_runs.len(), simulated.len(), "{name}: number of runs");
    let mut mismatches = Vec::new();
    for (sim, real) in simulated.iter().zip(&real_runs) {
        mismatches.extend(compare_run(name, &scenario, sim, real, times_count));
    }
    eprintln!(
        "{name}: real run took {:.1} s; {} mismatch(es)",
        started.elapsed().as_secs_f64(),
        mismatches.len()
    );
    let mismatches: Vec<String> = if VARIES_FOR_REAL.contains(&name) {
        let (held, noted): (Vec<String>, Vec<String>) = mismatches
            .into_iter()
            .partition(|m| m.contains("waited for a SYN retry"));
        for m in noted
            .iter()
            .filter(|m| !m.contains("the real log, for reference"))
        {
            eprintln!("{name}: varies for real, not held: {m}");
        }
        held
    } else {
        mismatches
    };
    let known: Vec<&(&str, &str, &str)> = KNOWN.iter().filter(|k| k.0 == name).collect();
    let unexplained: Vec<&String> = mismatches
        .iter()
        .filter(|m| !known.iter().any(|k| m.contains(k.1)))
        .collect();
    let gone: Vec<&&(&str, &str, &str)> = known
        .iter()
        .filter(|k| !mismatches.iter().any(|m| m.contains(k.1)))
        .collect();
    assert!(
        unexplained.is_empty() && gone.is_empty(),
        "{name}: the simulation and the real run disagree:\n  {}\n{}",
        unexplained
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        gone.iter()
            .map(|k| format!(
                "  a known disagreement no longer shows (remove it from KNOWN): {} ({})",
                k.1, k.2
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// One request as both worlds can tell it.
#[derive(Debug, Clone)]
struct Seen {
    label: String,
    outcome: String,
    syn_retry: bool,
    connect_us: Option<u64>,
    total_us: Option<u64>,
}

fn compare_run(
    name: &str,
    scenario: &Scenario,
    sim: &RunOutput,
    real: &Value,
    times_count: bool,
) -> Vec<String> {
    let run = sim
        .variant
        .as_deref()
        .map_or(String::new(), |v| format!("[{v}] "));
    let mut out = Vec::new();
    // The server's fate.
    let real_exit = real["exit_status"].as_i64().map(|s| s as i32);
    if sim.exit_status != real_exit {
        out.push(format!(
            "{run}exit status: simulated {:?}, real {:?} (None: still running)",
            sim.exit_status, real_exit
        ));
    }
    // The requests, group by group.
    let phases = request_phases(sim);
    let sim_seen: Vec<Seen> = sim
        .requests
        .iter()
        .zip(&phases)
        .map(|(r, p)| Seen {
            label: label(&r.client, r.seq),
            outcome: r.outcome.to_string(),
            syn_retry: p.syn_retries > 0,
            connect_us: r.connected_us.map(|c| c - r.start_us),
            total_us: r.done_us.map(|d| d - r.start_us),
        })
        .collect();
    let real_events = real["events"].as_array().cloned().unwrap_or_default();
    let real_seen: Vec<Seen> = real["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let conn = r["conn"].as_str();
            let start = r["start_us"].as_u64().unwrap_or(0);
            Seen {
                label: label(
                    r["client"].as_str().unwrap_or("?"),
                    r["seq"].as_u64().unwrap_or(1) as u32,
                ),
                outcome: r["outcome"].as_str().unwrap_or("?").to_string(),
                syn_retry: conn.is_some()
                    && real_events
                        .iter()
                        .any(|e| e["kind"] == "syn_retry" && e["conn"].as_str() == conn),
                connect_us: r["connected_us"].as_u64().map(|c| c - start),
                total_us: r["done_us"].as_u64().map(|d| d - start),
            }
        })
        .collect();
    if sim_seen.len() != real_seen.len() {
        out.push(format!(
            "{run}requests: simulated {}, real {}",
            sim_seen.len(),
            real_seen.len()
        ));
    }
    for group in groups(&sim_seen) {
        let mut s: Vec<&Seen> = sim_seen
            .iter()
            .filter(|r| group_of(&r.label) == group)
            .collect();
        let mut r: Vec<&Seen> = real_seen
            .iter()
            .filter(|r| group_of(&r.label) == group)
            .collect();
        let key = |x: &&Seen| {
            (
                x.outcome.clone(),
                x.syn_retry,
                x.total_us.unwrap_or(u64::MAX),
            )
        };
        s.sort_by_key(key);
        r.sort_by_key(key);
        for (k, (s, r)) in s.iter().zip(&r).enumerate() {
            let which = format!(
                "{run}{group} #{} by time (simulated {}, real {})",
                k + 1,
                s.label,
                r.label
            );
            if s.outcome != r.outcome {
                out.push(format!(
                    "{which}: outcome simulated {}, real {}",
                    s.outcome, r.outcome
                ));
            }
            if s.syn_retry != r.syn_retry {
                out.push(format!(
                    "{which}: connect() waited for a SYN retry: simulated {}, real {}",
                    s.syn_retry, r.syn_retry
                ));
            }
            if !times_count {
                continue;
            }
            for (what, sv, rv) in [
                ("connect", s.connect_us, r.connect_us),
                ("total", s.total_us, r.total_us),
            ] {
                match (sv, rv) {
                    (Some(sv), Some(rv)) if sv.abs_diff(rv) > tolerance(sv) => out.push(format!(
                        "{which}: {what} time simulated {:.1} ms, real {:.1} ms (tolerance {:.1} ms)",
                        sv as f64 / 1000.0,
                        rv as f64 / 1000.0,
                        tolerance(sv) as f64 / 1000.0
                    )),
                    (Some(_), None) | (None, Some(_)) => out.push(format!(
                        "{which}: {what} time simulated {sv:?} µs, real {rv:?} µs"
                    )),
                    _ => {}
                }
            }
        }
    }
    // The key log lines.
    let sim_log: Vec<&str> = sim::scenario::record::server_log(&sim.events);
    let real_log: Vec<&str> = real_events
        .iter()
        .filter(|e| e["category"] == "log")
        .filter_map(|e| e["text"].as_str())
        .collect();
    let variant_expect = scenario
        .variants
        .iter()
        .find(|v| Some(&v.name) == sim.variant.as_ref())
        .and_then(|v| v.expect.as_ref());
    let expects: Vec<&sim::scenario::Expect> = std::iter::once(&scenario.expect)
        .chain(variant_expect)
        .collect();
    let mut wanted: Vec<&str> = expects
        .iter()
        .flat_map(|e| e.log_contains.iter().map(String::as_str))
        .collect();
    wanted.extend(
        KEY_LINES
            .iter()
            .filter(|(n, _)| *n == name)
            .flat_map(|(_, lines)| lines.iter().copied()),
    );
    for line in wanted {
        let in_sim = sim_log.iter().any(|l| l.contains(line));
        let in_real = real_log.iter().any(|l| l.contains(line));
        if in_sim != in_real || !in_sim {
            out.push(format!(
                "{run}log line {line:?}: in the simulated log {in_sim}, in the real log {in_real}"
            ));
        }
    }
    for line in expects.iter().flat_map(|e| e.log_lacks.iter()) {
        if real_log.iter().any(|l| l.contains(line.as_str())) {
            out.push(format!(
                "{run}the real log has {line:?}, which it must lack"
            ));
        }
    }
    if !out.is_empty() {
        out.push(format!(
            "{run}(the real log, for reference:\n    {}\n)",
            real_log.join("\n    ")
        ));
    }
    out
}

fn label(client: &str, seq: u32) -> String {
    if seq > 1 {
        format!("{client} ({seq})")
    } else {
        client.to_string()
    }
}

/// `slow#2 (3)` → `slow`.
fn group_of(label: &str) -> &str {
    label.split('#').next().unwrap_or(label)
}

fn groups(seen: &[Seen]) -> Vec<&str> {
    let mut groups: Vec<&str> = Vec::new();
    for s in seen {
        let g = group_of(&s.label);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    groups
}

#[test]
fn every_real_scenario_is_compared() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut real = Vec::new();
    let mut simulated_only = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let scenario = parse(&std::fs::read_to_string(&path).unwrap(), &name)
            .unwrap_or_else(|e| panic!("{e}"));
        if scenario.real {
            real.push(name);
        } else {
            assert!(
                scenario.simulated_only.is_some(),
                "{name}: a scenario that does not run for real says why in `simulated_only`"
            );
            simulated_only.push(name);
        }
    }
    real.sort();
    assert_eq!(
        real, REAL,
        "REAL must list exactly the scenarios marked real = true"
    );
    assert!(real.len() >= 14, "at least 14 scenarios run for real");
}

#[test]
fn a_simulated_only_scenario_is_refused_with_its_reason() {
    let output = Command::new(common::wsgilab())
        .args(["replay", "--real", "20"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("runs only in the simulation: needs a second host"),
        "{stderr}"
    );
}

macro_rules! real_scenarios {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                compare($name);
            }
        )*
    };
}

real_scenarios! {
    s01_uwsgi_no_arguments => "01-uwsgi-no-arguments",
    s02_hello_world => "02-hello-world",
    s03_runserver_versus_workers => "03-runserver-versus-workers",
    s04_wrong_directory => "04-wrong-directory",
    s05_virtualenv_missing => "05-virtualenv-missing",
    s07_all_workers_busy => "07-all-workers-busy",
    s08_accept_queue_full => "08-accept-queue-full",
    s09_cpu_bound => "09-cpu-bound",
    s10_io_bound => "10-io-bound",
    s11_harakiri => "11-harakiri",
    s12_worker_segfault => "12-worker-segfault",
    s13_max_requests => "13-max-requests",
    s14_request_head_too_big => "14-request-head-too-big",
    s15_slow_clients => "15-slow-clients",
    s16_client_disconnects => "16-client-disconnects",
    s17_preforking_import_time_state => "17-preforking-import-time-state",
    s18_signals => "18-signals",
    s19_port_in_use => "19-port-in-use",
    s22_placeholder_first_value => "22-placeholder-first-value",
}
