//! The master and its worker processes, for real: kill -9 under load, harakiri, max-requests,
//! SIGHUP and SIGTERM under load, SIGINT, the stats server and uwsgitop, no zombies, and which
//! process runs with which allocator settings.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::server::{apps_dir, signal, Server};
use serde_json::Value;

fn start(extra: &[&str]) -> Server {
    let mut args = vec!["--wsgi-file", "testapp.py", "--master"];
    args.extend_from_slice(extra);
    Server::start(&apps_dir(), &args)
}

/// One request on its own connection: the status, or why there was none.
fn get(addr: &str, path: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no response ({} bytes)", raw.len()))
}

/// `threads` clients each making requests to `path` back to back until `stop` is set;
/// every outcome.
fn load(
    addr: &str,
    path: &str,
    threads: usize,
    stop: Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<Vec<Result<u16, String>>>> {
    (0..threads)
        .map(|_| {
            let (addr, path, stop) = (addr.to_string(), path.to_string(), stop.clone());
            thread::spawn(move || {
                let mut outcomes = Vec::new();
                // Bounded whatever happens: at most 2000 requests per client.
                while !stop.load(Ordering::SeqCst) && outcomes.len() < 2000 {
                    outcomes.push(get(&addr, &path));
                }
                outcomes
            })
        })
        .collect()
}

fn collect(handles: Vec<thread::JoinHandle<Vec<Result<u16, String>>>>) -> (usize, Vec<String>) {
    let mut ok = 0;
    let mut failures = Vec::new();
    for handle in handles {
        for outcome in handle.join().unwrap() {
            match outcome {
                Ok(200) => ok += 1,
                Ok(status) => failures.push(format!("status {status}")),
                Err(e) => failures.push(e),
            }
        }
    }
    (ok, failures)
}

fn worker_pids(server: &Server) -> Vec<u32> {
    stats(server)["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_u64().unwrap() as u32)
        .collect()
}

fn stats_port(server: &Server) -> u16 {
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.starts_with("stats server enabled on "))
        .expect("stats line");
    line.split(':')
        .nth(1)
        .and_then(|p| p.split(' ').next())
        .unwrap()
        .parse()
        .unwrap()
}

fn stats(server: &Server) -> Value {
    let mut stream = TcpStream::connect(("127.0.0.1", stats_port(server))).expect("stats connect");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    serde_json::from_str(&raw).unwrap_or_else(|e| panic!("stats JSON: {e}: {raw}"))
}

fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// SIGHUP while 4 clients keep requesting: waits until both workers were replaced (the stats
/// server is briefly gone while a master re-executes itself), checks that no request failed,
/// and returns the log.
fn reload_under_load(server: &Server) -> String {
    let before = worker_pids(server);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&server.addr(), "/slow?0.05", 4, stop.clone());
    thread::sleep(Duration::from_millis(500));
    server.signal("HUP");
    wait_until("both workers replaced", Duration::from_secs(15), || {
        std::panic::catch_unwind(|| worker_pids(server)).is_ok_and(|pids| {
            pids.len() == 2 && pids.iter().all(|p| *p != 0 && !before.contains(p))
        })
    });
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let (ok, failures) = collect(clients);
    let log = server.log();
    assert!(failures.is_empty(), "{failures:?}\n{log}");
    assert!(ok > 10, "{ok}");
    log
}

/// A master with a stats server, once all its workers are idle.
fn start_with_stats(extra: &[&str]) -> Server {
    let stats_flags = stats_args();
    let mut args = extra.to_vec();
    args.extend(stats_flags.iter().map(String::as_str));
    let server = start(&args);
    wait_until("workers ready", Duration::from_secs(10), || {
        stats(&server)["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["status"] == "idle")
    });
    server
}

fn stats_args() -> Vec<String> {
    vec![
        "--stats".into(),
        format!("127.0.0.1:{}", common::free_port()),
    ]
}

#[test]
fn kill_9_of_a_busy_worker_fails_only_its_request() {
    let server = start_with_stats(&["--processes", "2", "--listen", "64"]);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&server.addr(), "/slow?0.2", 6, stop.clone());
    // Wait until worker 1 is serving a request, then kill it.
    let mut victim = 0;
    wait_until("worker 1 busy", Duration::from_secs(10), || {
        let doc = stats(&server);
        let w = &doc["workers"][0];
        victim = w["pid"].as_u64().unwrap() as u32;
        w["status"] == "busy"
    });
    let killed_at = Instant::now();
    signal(victim, "KILL");
    wait_until("worker 1 respawned", Duration::from_secs(5), || {
        server.log().contains("Respawned uWSGI worker 1")
    });
    let respawn_delay = killed_at.elapsed();
    thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let (ok, failures) = collect(clients);
    let log = server.log();
    assert_eq!(
        failures.len(),
        1,
        "only the request in flight on the killed worker may fail: {failures:?}\n{log}"
    );
    assert!(ok > 10, "{ok} requests served\n{log}");
    assert!(
        log.contains(&format!(
            "DAMN ! worker 1 (pid: {victim}) died, killed by signal 9 :( trying respawn ..."
        )),
        "{log}"
    );
    assert!(
        log.contains("got no response: the worker died while serving it"),
        "{log}"
    );
    // The respawn follows the death at once; the bound is loose for a busy machine.
    assert!(
        respawn_delay < Duration::from_secs(3),
        "respawned after {respawn_delay:?}"
    );
    assert!(!worker_pids(&server).contains(&victim));
}

#[test]
fn harakiri_kills_the_stuck_worker_and_its_client_gets_nothing() {
    let server = start(&["--processes", "1", "--harakiri", "1"]);
    let started = Instant::now();
    let outcome = get(&server.addr(), "/slow?5");
    assert!(
        outcome.is_err(),
        "the client must get no response, got {outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "harakiri fires at N ± 1 s, took {:?}",
        started.elapsed()
    );
    let log = server.wait_for_log("Respawned uWSGI worker 1");
    assert!(log.contains("*** HARAKIRI ON WORKER 1 (pid: "), "{log}");
    assert!(
        log.contains("HARAKIRI [core 0] 127.0.0.1 - GET /slow?5 since "),
        "{log}"
    );
    assert!(
        log.contains("HARAKIRI triggered by worker 1 core 0 !!!"),
        "{log}"
    );
    assert!(log.contains("died, killed by signal 9"), "{log}");
    assert!(log.contains("its client gets no response"), "{log}");
    // The respawned worker serves.
    assert_eq!(get(&server.addr(), "/hello"), Ok(200));
}

#[test]
fn max_requests_recycles_workers_without_failing_a_request() {
    let server = start(&["--processes", "2", "--max-requests", "5"]);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&server.addr(), "/hello", 4, stop.clone());
    wait_until("several recycles", Duration::from_secs(20), || {
        server.log().matches("The work of process").count() >= 6
    });
    stop.store(true, Ordering::SeqCst);
    let (ok, failures) = collect(clients);
    let log = server.log();
    assert!(failures.is_empty(), "{failures:?}\n{log}");
    assert!(ok >= 30, "{ok}");
    assert!(
        log.contains("wsgilab: worker 1 retires: --max-requests 5 reached")
            || log.contains("wsgilab: worker 2 retires: --max-requests 5 reached"),
        "{log}"
    );
    assert!(log.contains("Respawned uWSGI worker"), "{log}");
    assert!(
        !log.contains("DAMN"),
        "a recycled worker is not a death:\n{log}"
    );
}

#[test]
fn sighup_reloads_under_load_without_failing_a_request() {
    let server = start_with_stats(&["--processes", "2", "--lazy-apps"]);
    let log = reload_under_load(&server);
    assert!(log.contains("SIGHUP received: graceful reload"), "{log}");
    assert_eq!(
        log.matches("WSGI app 0 (mountpoint='') ready").count(),
        4,
        "each new worker imports the app again (--lazy-apps):\n{log}"
    );
}

#[test]
fn sigterm_drains_the_request_in_flight_then_exits_0() {
    let server = start(&["--processes", "1"]);
    let addr = server.addr();
    let client = thread::spawn(move || get(&addr, "/slow?1"));
    server.wait_for_log("spawned uWSGI worker 1");
    thread::sleep(Duration::from_millis(400));
    server.signal("TERM");
    assert_eq!(
        client.join().unwrap(),
        Ok(200),
        "the request in flight is finished"
    );
    let (status, log) = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status, Some(0), "{log}");
    assert!(log.contains("uWSGI 2.0 would reload here instead"), "{log}");
    assert!(log.contains("Gracefully killing worker 1 (pid: "), "{log}");
    assert!(log.contains("goodbye to uWSGI."), "{log}");
}

#[test]
fn sigint_stops_at_once_and_leaves_no_process_behind() {
    let server = start_with_stats(&["--processes", "3"]);
    let pids = worker_pids(&server);
    server.signal("INT");
    let (status, log) = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status, Some(0), "{log}");
    assert!(
        log.contains("SIGINT/SIGQUIT received...killing workers..."),
        "{log}"
    );
    assert_eq!(log.matches("buried after").count(), 3, "{log}");
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} is still there (a zombie or an orphan)"
        );
    }
}

#[test]
fn stats_json_lists_the_workers_and_uwsgitop_reads_it() {
    let server = start_with_stats(&["--processes", "2"]);
    for _ in 0..3 {
        assert_eq!(get(&server.addr(), "/hello"), Ok(200));
    }
    let doc = stats(&server);
    assert_eq!(doc["pid"].as_u64().unwrap() as u32, server.pid());
    assert_eq!(
        doc["sockets"][0]["max_queue"], 100,
        "--listen's default: {doc}"
    );
    // The worker reports a request after the client has its response: wait for the count.
    wait_until("3 requests counted", Duration::from_secs(5), || {
        let doc = stats(&server);
        let workers = doc["workers"].as_array().unwrap();
        workers
            .iter()
            .map(|w| w["requests"].as_u64().unwrap())
            .sum::<u64>()
            == 3
    });
    let doc = stats(&server);
    let workers = doc["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    for w in workers {
        for key in [
            "id",
            "pid",
            "accepting",
            "exceptions",
            "harakiri_count",
            "status",
            "rss",
            "vsz",
            "running_time",
            "last_spawn",
            "respawn_count",
            "tx",
            "avg_rt",
            "apps",
            "cores",
            "signals",
        ] {
            assert!(w.get(key).is_some(), "worker has no {key}: {w}");
        }
    }
    // The pids change after a respawn.
    let before = worker_pids(&server);
    signal(before[0], "KILL");
    wait_until("worker 1 respawned", Duration::from_secs(5), || {
        let pids = worker_pids(&server);
        pids[0] != before[0] && pids[0] != 0
    });
    assert_eq!(stats(&server)["workers"][0]["respawn_count"], 1);

    // The real uwsgitop, in a terminal, for two refreshes.
    let uwsgitop = common::tool_venv(&["uwsgitop==0.12"])
        .join("bin")
        .join("uwsgitop");
    let output = std::process::Command::new("timeout")
        .args(["3", "script", "-qec"])
        .arg(format!(
            "{} 127.0.0.1:{}",
            uwsgitop.display(),
            stats_port(&server)
        ))
        .arg("/dev/null")
        .env("TERM", "xterm")
        .env("COLUMNS", "200")
        .env("LINES", "40")
        .output()
        .expect("run uwsgitop under script");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(!screen.contains("Traceback"), "uwsgitop failed:\n{screen}");
    assert!(
        screen.contains("WID") && screen.contains(&worker_pids(&server)[1].to_string()),
        "uwsgitop did not show the workers:\n{screen}"
    );
}

#[test]
fn reload_on_rss_recycles_a_leaking_worker() {
    let server = start(&["--processes", "1", "--reload-on-rss", "80"]);
    let mut retired = false;
    for _ in 0..12 {
        assert_eq!(get(&server.addr(), "/grow"), Ok(200));
        if server.log().contains("over --reload-on-rss 80 MB") {
            retired = true;
            break;
        }
    }
    assert!(retired, "{}", server.log());
    let log = server.wait_for_log("Respawned uWSGI worker 1");
    assert!(log.contains("...The work of process "), "{log}");
    assert_eq!(get(&server.addr(), "/hello"), Ok(200));
}

#[test]
fn sigterm_kills_what_outstays_the_mercy() {
    let server = start(&["--processes", "1", "--worker-reload-mercy", "1"]);
    let addr = server.addr();
    let client = thread::spawn(move || get(&addr, "/slow?10"));
    server.wait_for_log("spawned uWSGI worker 1");
    thread::sleep(Duration::from_millis(500));
    server.signal("TERM");
    let (status, log) = server.wait_exit(Duration::from_secs(8));
    assert_eq!(status, Some(0), "{log}");
    assert!(
        log.contains("is taking too much time to die...NO MERCY !!!"),
        "{log}"
    );
    assert!(
        client.join().unwrap().is_err(),
        "the request outstayed the mercy: no response"
    );
}

#[test]
fn a_worker_dying_at_start_up_is_respawned_with_a_growing_delay() {
    let server = Server::start(
        &apps_dir(),
        &[
            "--wsgi-file",
            "crash_at_import.py",
            "--master",
            "--processes",
            "1",
            "--lazy-apps",
        ],
    );
    thread::sleep(Duration::from_secs(4));
    let log = server.log();
    let deaths = log.matches("DAMN ! worker 1").count();
    assert!(
        log.contains("worker respawning too fast !!! i have to sleep a bit"),
        "{log}"
    );
    assert!(log.contains("a start-up failure?"), "{log}");
    // Without the back-off it would be hundreds.
    assert!((2..=6).contains(&deaths), "{deaths} deaths in 4 s:\n{log}");
}

#[test]
fn a_full_listen_queue_is_logged_by_the_master() {
    let server = start(&["--processes", "1", "--listen", "2"]);
    // One request holds the only worker; the queue (2 + 1 places) fills behind it.
    let clients: Vec<_> = (0..5)
        .map(|_| {
            let addr = server.addr();
            thread::spawn(move || get(&addr, "/slow?1.5"))
        })
        .collect();
    let log = server.wait_for_log("*** uWSGI listen queue of socket \"127.0.0.1:");
    let line = log
        .lines()
        .find(|l| l.contains("listen queue of socket"))
        .unwrap();
    assert!(
        line.contains("full !!! (3/2)") || line.contains("full !!! (2/2)"),
        "{line}"
    );
    drop(server);
    for client in clients {
        let _ = client.join();
    }
}

#[test]
fn sighup_when_preforking_reexecutes_the_master_without_failing_a_request() {
    let server = start_with_stats(&["--processes", "2"]);
    let log = reload_under_load(&server);
    assert!(
        log.contains("gracefully (RE)spawned uWSGI master process"),
        "{log}"
    );
    assert!(log.contains("binary reloading uWSGI..."), "{log}");
    assert_eq!(
        log.matches("WSGI app 0 (mountpoint='') ready").count(),
        2,
        "the new master imports the app again:\n{log}"
    );
    assert_eq!(
        stats(&server)["pid"].as_u64().unwrap() as u32,
        server.pid(),
        "same master pid after the re-exec"
    );
}

#[test]
fn workers_tune_the_allocator_after_the_app_is_imported() {
    // The master keeps glibc's defaults while it imports the app, so what the import allocates
    // in large blocks is mapped by itself and a worker can hand it back; a worker keeps blocks
    // of up to 2 MiB in its heap, as a server without a master does once the app is imported.
    for extra in [&["--master", "--processes", "1"][..], &[]] {
        let mut args = vec!["--wsgi-file", "allocator.py"];
        args.extend_from_slice(extra);
        let server = Server::start(&apps_dir(), &args);
        let response = server.get("/");
        assert_eq!(
            response.text(),
            "import: mmap, request: heap",
            "{args:?}\n{}",
            server.log()
        );
    }
}

#[test]
fn buried_after_counts_from_the_stop_request_not_from_the_spawn() {
    let server = start(&["--processes", "1"]);
    // The worker is some seconds old when it is asked to stop, and it leaves at once.
    thread::sleep(Duration::from_millis(2500));
    server.signal("TERM");
    let (status, log) = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status, Some(0), "{log}");
    let line = log
        .lines()
        .find(|l| l.starts_with("worker 1 buried after "))
        .unwrap_or_else(|| panic!("no burial line:\n{log}"));
    // Whole wall-clock seconds, as uWSGI's master.c counts them: 0, or 1 across a second.
    assert!(
        line == "worker 1 buried after 0 seconds" || line == "worker 1 buried after 1 seconds",
        "{line}"
    );
}

#[test]
fn the_request_lines_total_counts_every_workers_requests() {
    let server = start(&["--processes", "2"]);
    let addr = server.addr();
    // Two at once, so that each worker serves one; then a third.
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let addr = addr.clone();
            thread::spawn(move || get(&addr, "/slow?0.5"))
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), Ok(200));
    }
    assert_eq!(get(&addr, "/hello"), Ok(200));
    let log = server.wait_for_log("GET /hello =>");
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("[pid: ")).collect();
    assert_eq!(lines.len(), 3, "{log}");
    let pids: std::collections::BTreeSet<&str> =
        lines.iter().filter_map(|l| l.split('|').next()).collect();
    assert_eq!(pids.len(), 2, "both workers served: {log}");
    // `req: N/M`: N is the app's count in that process, M the whole instance's (uWSGI's
    // uwsgi.workers[0].requests, in memory the workers share).
    let totals: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split("/").nth(1)?.split(']').next())
        .collect();
    let mut sorted = totals.clone();
    sorted.sort();
    assert_eq!(sorted, ["1", "2", "3"], "{log}");
    let hello = lines.iter().find(|l| l.contains("GET /hello")).unwrap();
    assert!(hello.contains("/3] "), "{hello}");
}
