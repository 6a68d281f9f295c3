//! gunicorn's request corpus through the simulated network: the real `wsgilab serve
//! --http11-socket` (its worker, parser and environ code, unchanged) runs on simulated hosts,
//! the app is the model's echo (`RouteBehaviour::echo`, the twin of tests/apps/echoapp.py),
//! and a simulated client sends every case whole, one byte per write and in three seeded
//! random chunkings, with a virtual millisecond between writes so that the server's reads see
//! every split. What each case must get, and which cases are skipped and why, is shared with
//! the real-socket test (tests/http_front_door.rs) through tests/common/gunicorn.rs.
//!
//! One simulation per way of splitting, each with two servers (`--buffer-size 32768`, and the
//! default 4096 for the cases that are invalid only under gunicorn's default limits) and one
//! client that sends the cases one connection at a time; the five simulations run on threads
//! of their own, and their answers are compared case by case at the end.

#[path = "../../tests/common/gunicorn.rs"]
mod gunicorn;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gunicorn::{
    check, load_cases, parse_responses, pieces, plan, splits_for, End, Exchange, Expect, Plan, Run,
    Split, Tally,
};
use serde_json::Value;
use sim::files::FileTree;
use sim::net::SimNet;
use sim::trace::Category;
use sim::world::{ServerSetup, TestWorld};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long the client waits for the server to say anything: a hang shows up as this virtual
/// timeout. The servers run with a --socket-timeout well above it, so a server that forgets to
/// close cannot hide behind its own idle timeout.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The pause after each write. The network delivers to another host at the next millisecond
/// (Linux's timer granularity, which the model keeps), so writes a millisecond apart arrive,
/// and are read, one by one.
const PACE: Duration = Duration::from_millis(1);

/// Every virtual millisecond costs a step of the whole simulation, so strings of more than
/// this many pieces (the corpus's eight cases of 4 to 16 KiB, sent byte by byte or in small
/// random pieces) pause only [`PAUSES_WHEN_LONG`] times, after equal runs of pieces: their
/// reads see the same cuts, fewer of them. Everything shorter is read piece by piece. (The
/// parser's own tests split the long cases at every byte.)
const PACED_PIECES: usize = 2048;
const PAUSES_WHEN_LONG: usize = 512;

/// The two servers' hosts, and what they add to the command line.
const BIG: (&str, &[&str]) = ("server-big", &["--buffer-size", "32768"]);
const DEFAULT: (&str, &[&str]) = ("server-default", &[]);

const PORT: u16 = 8000;

fn setup(extra: &[&str]) -> ServerSetup {
    let mut files = FileTree::new();
    // The model does not run this source; `echo` below is what the app does.
    files.add_file(
        "/srv/app/echoapp.py",
        "def application(environ, start_response):\n    ...  # answers with what reached it\n",
    );
    let mut args = vec![
        "--http11-socket",
        ":8000",
        "--wsgi-file",
        "echoapp.py",
        "--socket-timeout",
        "30",
    ];
    args.extend_from_slice(extra);
    let mut setup = ServerSetup {
        files,
        cwd: "/srv/app".into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        ..ServerSetup::default()
    };
    setup.app.default.echo = true;
    setup
}

/// Which byte string, and how split, an exchange was: (case, run, split).
type JobKey = (usize, usize, Split);

/// One byte string to send, in the order the client sends them.
struct Job {
    case: usize,
    run: usize,
    default_buffer_size: bool,
    raw: Vec<u8>,
    half_close: bool,
    split: Split,
}

/// Sends `raw` in `split`'s pieces on a new connection, [`PACE`] apart, while reading all the
/// server sends until it closes, resets or stays silent for [`READ_TIMEOUT`] after the last
/// write. A write that
/// fails (the server refused and closed) ends the sending; with `half_close` the client then
/// sends its FIN.
async fn exchange(
    net: &SimNet,
    server: SocketAddr,
    raw: &[u8],
    split: Split,
    half_close: bool,
) -> Exchange {
    let stream = match net.connect(server).await {
        Ok(stream) => stream,
        Err(e) => {
            return Exchange {
                received: Vec::new(),
                end: End::Error(format!("connect: {e}")),
            }
        }
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    // A long byte-by-byte send takes many virtual seconds: the server's silence counts only
    // from the client's last write.
    let sending = std::cell::Cell::new(true);
    let send = async {
        let pieces = pieces(raw, split);
        let last = pieces.len().saturating_sub(1);
        let pause_every = if pieces.len() <= PACED_PIECES {
            1
        } else {
            pieces.len().div_ceil(PAUSES_WHEN_LONG)
        };
        for (i, piece) in pieces.into_iter().enumerate() {
            if writer.write_all(piece).await.is_err() {
                return;
            }
            if i < last && (i + 1) % pause_every == 0 {
                tokio::time::sleep(PACE).await;
            }
        }
        if half_close {
            let _ = writer.shutdown().await;
        }
    };
    let send = async {
        send.await;
        sending.set(false);
    };
    let receive = async {
        let mut received = Vec::new();
        let mut buf = [0u8; 16384];
        let end = loop {
            match tokio::time::timeout(READ_TIMEOUT, reader.read(&mut buf)).await {
                Err(_) if sending.get() => continue,
                Err(_) => break End::TimedOut,
                Ok(Ok(0)) => break End::Closed,
                Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
                Ok(Err(e)) if e.kind() == ErrorKind::ConnectionReset => break End::Reset,
                Ok(Err(e)) => break End::Error(e.to_string()),
            }
        };
        Exchange { received, end }
    };
    let ((), exchange) = tokio::join!(send, receive);
    exchange
}

/// What one simulation gave: an exchange per job, and both servers' logs.
struct Outcome {
    exchanges: Vec<Exchange>,
    /// The answer to a normal request sent to each server after the corpus.
    still_alive: Vec<Exchange>,
    log: Vec<String>,
    /// Every event of the run, rendered, for `FRONT_DOOR_ONLY`.
    trace: Vec<String>,
    virtual_time: Duration,
}

/// Runs both servers and a client that sends `jobs` one after another.
fn simulate(jobs: Vec<Job>) -> Outcome {
    let mut world = TestWorld::new(Duration::from_secs(24 * 3600));
    for (host, extra) in [BIG, DEFAULT] {
        world.server(host, setup(extra));
    }
    let results = Arc::new(Mutex::new((Vec::new(), Vec::new(), Duration::ZERO)));
    let out = results.clone();
    world.client("client", move |client_net| async move {
        let address = |host: &str| SocketAddr::new(turmoil::lookup(host), PORT);
        let (big, default) = (address(BIG.0), address(DEFAULT.0));
        for job in &jobs {
            let server = if job.default_buffer_size {
                default
            } else {
                big
            };
            let exchange = exchange(&client_net, server, &job.raw, job.split, job.half_close).await;
            out.lock().unwrap().0.push(exchange);
        }
        for server in [big, default] {
            let normal = b"GET /still/alive?yes HTTP/1.1\r\nHost: t\r\n\r\n";
            let exchange = exchange(&client_net, server, normal, Split::Whole, true).await;
            out.lock().unwrap().1.push(exchange);
        }
        out.lock().unwrap().2 = turmoil::elapsed();
        Ok(())
    });
    let events = world.run().events;
    let (exchanges, still_alive, virtual_time) = std::mem::take(&mut *results.lock().unwrap());
    let log = events
        .iter()
        .filter(|e| e.category == Category::Log)
        .map(|e| format!("{} {}", e.host, e.text))
        .collect();
    let trace = events
        .iter()
        .map(|e| {
            format!(
                "{:>10.3} ms {} {:?} {} {}: {}",
                e.at_us as f64 / 1000.0,
                e.host,
                e.category,
                e.conn.as_deref().unwrap_or("-"),
                e.kind,
                e.text
            )
        })
        .collect();
    Outcome {
        exchanges,
        still_alive,
        log,
        trace,
        virtual_time,
    }
}

#[test]
fn gunicorn_corpus_whole_bytewise_and_in_random_chunks_through_the_simulated_network() {
    let started = Instant::now();
    let Some(cases) = load_cases(
        env!("CARGO_MANIFEST_DIR"),
        "gunicorn_corpus_whole_bytewise_and_in_random_chunks_through_the_simulated_network",
    ) else {
        return;
    };
    // FRONT_DOOR_ONLY=valid/019 runs that case alone and prints every simulation's trace.
    let only = std::env::var("FRONT_DOOR_ONLY").ok();
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    // Per case: its name and its runs, or nothing if skipped.
    let mut plans: Vec<Option<(bool, Vec<Run>)>> = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        if only.as_deref().is_some_and(|only| only != name) {
            plans.push(None);
            continue;
        }
        match plan(case) {
            Plan::Skip(reason) => {
                eprintln!("skipped {name}: {reason}");
                tally.skipped += 1;
                plans.push(None);
            }
            Plan::Send {
                default_buffer_size,
                runs,
                problems,
            } => {
                failures.extend(problems);
                tally.count(case, &runs);
                plans.push(Some((default_buffer_size, runs)));
            }
        }
    }

    // The jobs of the i-th way of splitting, for each i.
    let jobs_for = |nth: usize| -> Vec<Job> {
        let mut jobs = Vec::new();
        for (case, planned) in plans.iter().enumerate() {
            let Some((default_buffer_size, runs)) = planned else {
                continue;
            };
            let name = cases[case]["name"].as_str().unwrap_or_default();
            for (run_index, run) in runs.iter().enumerate() {
                jobs.push(Job {
                    case,
                    run: run_index,
                    default_buffer_size: *default_buffer_size,
                    raw: run.raw.clone(),
                    half_close: run.expect.half_close(),
                    split: splits_for(name)[nth],
                });
            }
        }
        jobs
    };
    let ways = splits_for("").len();
    let outcomes: Vec<(Vec<JobKey>, Outcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..ways)
            .map(|nth| {
                let jobs = jobs_for(nth);
                scope.spawn(move || {
                    let keys = jobs.iter().map(|j| (j.case, j.run, j.split)).collect();
                    (keys, simulate(jobs))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a simulation panicked"))
            .collect()
    });

    if only.is_some() {
        for (nth, (_, outcome)) in outcomes.iter().enumerate() {
            eprintln!(
                "--- the trace of simulation {nth} ---\n{}",
                outcome.trace.join("\n")
            );
        }
    }

    // Every exchange checked; every split of a byte string must get the same statuses.
    let mut first_summary: Vec<Vec<Option<String>>> = plans
        .iter()
        .map(|p| {
            p.as_ref()
                .map_or(Vec::new(), |(_, runs)| vec![None; runs.len()])
        })
        .collect();
    for (keys, outcome) in &outcomes {
        assert_eq!(keys.len(), outcome.exchanges.len(), "every job was sent");
        for (&(case, run, split), exchange) in keys.iter().zip(&outcome.exchanges) {
            tally.exchanges += 1;
            let name = cases[case]["name"].as_str().unwrap_or_default();
            let Some((_, runs)) = &plans[case] else {
                continue;
            };
            let run_plan = &runs[run];
            match check(exchange, &run_plan.expect) {
                Ok(summary) => match &first_summary[case][run] {
                    None => first_summary[case][run] = Some(summary),
                    Some(first) if *first != summary => failures.push(format!(
                        "{name} ({}), {split:?}: answered {summary}, but {first} whole",
                        run_plan.label
                    )),
                    Some(_) => {}
                },
                Err(problem) => {
                    failures.push(format!("{name} ({}), {split:?}: {problem}", run_plan.label))
                }
            }
        }
        // No worker crashed or hung on the way.
        for exchange in &outcome.still_alive {
            let answer = check(exchange, &Expect::Accepted).and_then(|_| {
                let responses = parse_responses(&exchange.received)?;
                serde_json::from_slice::<Value>(&responses[0].body).map_err(|e| e.to_string())
            });
            match answer {
                Ok(seen) if seen["path"] == "/still/alive" && seen["query"] == "yes" => {}
                other => failures.push(format!("a normal request after the corpus: {other:?}")),
            }
        }
    }
    for (case, summaries) in first_summary.iter().enumerate() {
        let name = cases[case]["name"].as_str().unwrap_or_default();
        if let Some((_, runs)) = &plans[case] {
            for (run, summary) in runs.iter().zip(summaries) {
                eprintln!(
                    "{name} ({}): {}",
                    run.label,
                    summary.as_deref().unwrap_or("FAILED")
                );
            }
        }
    }
    let virtual_times: Vec<String> = outcomes
        .iter()
        .map(|(_, o)| format!("{:.1} s", o.virtual_time.as_secs_f64()))
        .collect();
    eprintln!(
        "gunicorn corpus through the simulated network: {}; virtual time per way of splitting \
         (whole, bytewise, 3 random): {}; {:.1} s of real time",
        tally.summary(cases.len()),
        virtual_times.join(", "),
        started.elapsed().as_secs_f64(),
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}\n--- the servers' log in the whole-bytes simulation (tail) ---\n{}",
        failures.len(),
        failures.join("\n"),
        tail(&outcomes[0].1.log, 60)
    );
}

fn tail(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n")
}
