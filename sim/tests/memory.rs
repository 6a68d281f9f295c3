//! A leaking route grows the worker's simulated resident memory; the real worker reads it
//! through the process seam after each request, and `--reload-on-rss` recycles the worker
//! with uWSGI's lines once it is over the limit. The new worker is forked from the master, so
//! it starts again from the master's memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use server::log::lines::{HowStarted, WorkDone, WorkerStarted};
use sim::procs::Machine;
use sim::python::{Route, RouteBehaviour};
use sim::trace::{Category, Event, EventKind};
use sim::world::{get, ServerSetup, TestWorld};

const MB: u64 = 1 << 20;

fn leaking(args: &[&str], leak: u64) -> ServerSetup {
    let typed: Vec<&str> = [
        "--http-socket",
        ":8000",
        "--wsgi-file",
        "hello.py",
        "--master",
    ]
    .iter()
    .chain(args)
    .copied()
    .collect();
    let mut setup = ServerSetup::hello_world(&typed);
    setup.app.routes.push(Route {
        path: "/grow".into(),
        method: None,
        behaviour: RouteBehaviour {
            leak_bytes: leak,
            ..Default::default()
        },
    });
    setup
}

/// The server, and one client sending `paths` in order, each on a new connection 10 ms
/// apart. The trace, the responses' status lines, and the server machine.
fn run(setup: ServerSetup, paths: &[&'static str]) -> (Vec<Event>, Vec<String>, Machine) {
    let mut world = TestWorld::new(Duration::from_secs(60));
    world.server("server", setup);
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let out = statuses.clone();
    let paths = paths.to_vec();
    world.client("client", move |net| async move {
        for path in paths {
            let answer = get(&net, "server", 8000, path).await?;
            out.lock()
                .unwrap()
                .push(answer.lines().next().unwrap_or_default().to_string());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    });
    let mut done = world.run();
    let statuses = statuses.lock().unwrap().clone();
    let machine = done.machines.remove("server").expect("the server machine");
    (done.events, statuses, machine)
}

fn log(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e.category == Category::Log)
        .map(|e| e.text.as_str())
        .collect()
}

fn worker_pids(events: &[Event]) -> Vec<u32> {
    log(events)
        .iter()
        .filter_map(|line| WorkerStarted::parse(line))
        .filter(|w| w.slot == 1)
        .map(|w| w.pid)
        .collect()
}

#[test]
fn a_leak_past_reload_on_rss_recycles_the_worker() {
    // The master starts at 10 MB and the worker is forked with the same; 1 MB per request
    // passes 12 MB at the third.
    let (events, statuses, machine) = run(
        leaking(&["--processes", "1", "--reload-on-rss", "12"], MB),
        &["/grow", "/grow", "/grow", "/grow", "/"],
    );
    assert_eq!(statuses, vec!["HTTP/1.1 200 OK"; 5]);
    let lines = log(&events);
    let text = lines.join("\n");
    let retire = lines
        .iter()
        .position(|l| {
            l.starts_with(
                "wsgilab: worker 1 retires: resident memory 13 MB is over --reload-on-rss 12 MB",
            )
        })
        .unwrap_or_else(|| panic!("no retirement in:\n{text}"));
    let pids = worker_pids(&events);
    assert_eq!(pids.len(), 2, "{text}");
    assert_eq!(lines[retire + 1], WorkDone { pid: pids[0] }.to_string());
    assert!(
        lines[retire..].iter().any(|l| WorkerStarted::parse(l)
            == Some(WorkerStarted {
                slot: 1,
                pid: pids[1],
                how: HowStarted::Respawned
            })),
        "{text}"
    );
    // The third request was the last of the old worker; the new one served the other two.
    let served_by = |pid: u32| {
        events
            .iter()
            .filter(|e| e.kind == EventKind::AppStart && e.pid == Some(pid))
            .count()
    };
    assert_eq!((served_by(pids[0]), served_by(pids[1])), (3, 2));
    assert!(
        !text.contains("DAMN !"),
        "a retirement is not a death:\n{text}"
    );
    // The old worker is gone; the new one was forked from the master's 10 MB and leaked once.
    assert!(!machine.is_alive(pids[0]));
    assert_eq!(machine.rss(pids[1]), Some(11 * MB));
    assert_eq!(machine.rss(pids[0]), Some(13 * MB));
}

#[test]
fn under_the_limit_the_worker_stays() {
    let (events, statuses, machine) = run(
        leaking(&["--processes", "1", "--reload-on-rss", "64"], MB),
        &["/grow"; 5],
    );
    assert_eq!(statuses.len(), 5);
    let pids = worker_pids(&events);
    assert_eq!(pids.len(), 1);
    assert_eq!(machine.rss(pids[0]), Some(15 * MB));
    assert!(!log(&events).iter().any(|l| l.contains("retires")));
}
