//! What a preforked worker inherits from the master that imported the app, as the trace tells
//! it: a thread started at import exists only in the master; a connection opened at import is
//! one socket shared by every worker, whose queries interleave on it. With `--lazy-apps` each
//! worker imports the app itself and has its own of both.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use server::log::lines::{HowStarted, MasterSpawned, WorkerStarted};
use sim::python::{Route, RouteBehaviour};
use sim::trace::{Category, Event, EventKind};
use sim::world::{get, ServerSetup, TestWorld};

fn setup(args: &[&str]) -> ServerSetup {
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
    // Every request waits on "the database" long enough for two workers to overlap.
    setup.app.routes.push(Route {
        path: "/query".into(),
        method: None,
        behaviour: RouteBehaviour {
            sleep_ms: 100,
            ..Default::default()
        },
    });
    setup
}

/// Runs the server, then `clients` clients at once, each sending `requests` GETs of `path`
/// one after the other on fresh connections; the trace and the responses.
fn run(setup: ServerSetup, path: &'static str, clients: usize, requests: usize) -> Vec<Event> {
    let mut world = TestWorld::new(Duration::from_secs(60));
    world.server("server", setup);
    let answers = Arc::new(Mutex::new(Vec::new()));
    for client in 0..clients {
        let out = answers.clone();
        world.client(&format!("client{client}"), move |net| async move {
            for _ in 0..requests {
                let answer = get(&net, "server", 8000, path).await?;
                out.lock().unwrap().push(answer);
            }
            Ok(())
        });
    }
    let events = world.run().events;
    let answers = answers.lock().unwrap();
    assert_eq!(answers.len(), clients * requests);
    for answer in answers.iter() {
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }
    events
}

fn of_kind(events: &[Event], kind: EventKind) -> Vec<&Event> {
    events.iter().filter(|e| e.kind == kind).collect()
}

/// The pids of the workers, from the master's `spawned uWSGI worker N (pid: P, ...)` lines.
fn worker_pids(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter(|e| e.category == Category::Log)
        .filter_map(|e| WorkerStarted::parse(&e.text))
        .filter(|w| matches!(w.how, HowStarted::Spawned { .. }))
        .map(|w| w.pid)
        .collect()
}

fn master_pid(events: &[Event]) -> u32 {
    events
        .iter()
        .find_map(|e| MasterSpawned::parse(&e.text))
        .map(|m| m.pid)
        .expect("the master's pid")
}

#[test]
fn a_thread_started_at_import_exists_only_in_the_master() {
    let mut threaded = setup(&["--processes", "3"]);
    threaded.app.starts_thread_at_import = true;
    let events = run(threaded, "/", 1, 1);
    let master = master_pid(&events);
    let workers = worker_pids(&events);
    assert_eq!(workers.len(), 3);

    let started = of_kind(&events, EventKind::ImportThread);
    assert_eq!(started.len(), 1, "imported once, by the master");
    assert_eq!(started[0].pid, Some(master));

    let missing = of_kind(&events, EventKind::ForkThreadMissing);
    let pids: Vec<Option<u32>> = missing.iter().map(|e| e.pid).collect();
    assert_eq!(pids, workers.iter().map(|&p| Some(p)).collect::<Vec<_>>());
    for (event, worker) in missing.iter().zip(&workers) {
        assert_eq!(event.category, Category::App);
        assert!(
            event.text.contains(&format!(
                "started at import in pid {master} does not exist in pid {worker}"
            )),
            "{}",
            event.text
        );
    }
    // Told at the first fork, once.
    let hints = of_kind(&events, EventKind::Hint);
    assert_eq!(hints.len(), 1);
    assert!(hints[0]
        .text
        .starts_with("hint: uwsgi_file_hello starts a thread"));
    assert!(hints[0].text.contains("--lazy-apps"));
    // Each fork's explanation comes right after the fork itself.
    let fork_at = events
        .iter()
        .position(|e| e.kind == EventKind::Fork && e.pid == Some(workers[0]))
        .expect("the fork");
    assert_eq!(events[fork_at + 1].kind, EventKind::ForkThreadMissing);
}

#[test]
fn a_connection_opened_at_import_is_shared_and_queries_interleave() {
    let mut connected = setup(&["--processes", "2"]);
    connected.app.opens_connection_at_import = true;
    let events = run(connected, "/query", 2, 2);
    let master = master_pid(&events);
    let workers = worker_pids(&events);
    assert_eq!(workers.len(), 2);

    let shared = of_kind(&events, EventKind::ForkConnectionShared);
    assert_eq!(shared.len(), 2);
    assert!(
        shared[0].text.contains(&format!(
            "the connection uwsgi_file_hello opened at import in pid {master}"
        )),
        "{}",
        shared[0].text
    );
    assert!(
        shared[1].text.contains(&format!(
            "workers pids {} and {} now share the one connection",
            workers[0], workers[1]
        )),
        "{}",
        shared[1].text
    );
    assert!(shared[1].text.contains("their queries interleave"));
    assert!(of_kind(&events, EventKind::Hint)[0]
        .text
        .contains("opens a connection when it is imported"));

    // Two clients at once keep both workers on the connection at the same time.
    let queries = of_kind(&events, EventKind::QuerySharedConnection);
    assert_eq!(queries.len(), 4, "one per request");
    let interleaved: Vec<&&Event> = queries
        .iter()
        .filter(|e| e.text.contains("their queries interleave on one socket"))
        .collect();
    assert!(!interleaved.is_empty(), "{queries:#?}");
    for event in interleaved {
        let other = workers.iter().find(|&&w| Some(w) != event.pid).unwrap();
        assert!(
            event
                .text
                .contains(&format!("while pid {other} is querying")),
            "{}",
            event.text
        );
        assert!(event.conn.is_some(), "a query belongs to a request");
    }
}

#[test]
fn with_lazy_apps_each_worker_has_its_own_thread_and_connection() {
    let mut lazy = setup(&["--processes", "2", "--lazy-apps"]);
    lazy.app.starts_thread_at_import = true;
    lazy.app.opens_connection_at_import = true;
    let events = run(lazy, "/query", 2, 2);
    let workers = worker_pids(&events);
    assert_eq!(workers.len(), 2);
    for kind in [
        EventKind::ForkThreadMissing,
        EventKind::ForkConnectionShared,
        EventKind::QuerySharedConnection,
        EventKind::Hint,
    ] {
        assert!(of_kind(&events, kind).is_empty(), "{kind} with --lazy-apps");
    }
    let threads = of_kind(&events, EventKind::ImportThread);
    let connections = of_kind(&events, EventKind::ImportConnection);
    for (list, own) in [
        (&threads, "this worker has its own thread"),
        (
            &connections,
            "the connection is this worker's own, no other process talks on it",
        ),
    ] {
        let pids: Vec<Option<u32>> = list.iter().map(|e| e.pid).collect();
        assert_eq!(pids, workers.iter().map(|&p| Some(p)).collect::<Vec<_>>());
        for (event, worker) in list.iter().zip(&workers) {
            assert!(
                event.text.contains(&format!(
                    "in pid {worker}, after the fork (--lazy-apps): {own}"
                )),
                "{}",
                event.text
            );
        }
    }
}

#[test]
fn an_app_without_import_effects_forks_silently() {
    let events = run(setup(&["--processes", "2"]), "/", 1, 1);
    for kind in [
        EventKind::ForkThreadMissing,
        EventKind::ForkConnectionShared,
        EventKind::QuerySharedConnection,
        EventKind::Hint,
    ] {
        assert!(of_kind(&events, kind).is_empty(), "{kind}");
    }
}
