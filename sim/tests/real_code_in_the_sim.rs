//! The real `wsgilab serve` — the binary's start-up, master and worker code, unchanged — runs
//! over the simulated network, processes and Python, and replays byte for byte.

use std::time::Duration;

use sim::trace::{Category, Event, EventKind};
use sim::world::{get, ServerSetup, TestWorld};

fn setup(args: &[&str]) -> ServerSetup {
    ServerSetup::hello_world(args)
}

/// Runs the server and `clients` GETs of `/`, each on its own connection, `gap` apart; the
/// trace and what each client read.
fn run(setup: ServerSetup, clients: usize, gap: Duration) -> (Vec<Event>, Vec<String>) {
    run_path(setup, "/", clients, gap)
}

fn run_path(
    setup: ServerSetup,
    path: &'static str,
    clients: usize,
    gap: Duration,
) -> (Vec<Event>, Vec<String>) {
    let mut world = TestWorld::new(Duration::from_secs(120));
    world.server("server", setup);
    let answers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = answers.clone();
    world.client("client", move |net| async move {
        for _ in 0..clients {
            let answer = get(&net, "server", 8000, path).await?;
            out.lock().unwrap().push(answer);
            tokio::time::sleep(gap).await;
        }
        Ok(())
    });
    let events = world.run().events;
    let answers = answers.lock().unwrap().clone();
    (events, answers)
}

fn log(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.category == Category::Log)
        .map(|e| e.text.clone())
        .collect()
}

#[test]
fn hello_world_through_the_real_master_and_workers() {
    let (events, answers) = run(
        setup(&[
            "--http-socket",
            ":8000",
            "--wsgi-file",
            "hello.py",
            "--master",
            "--processes",
            "2",
        ]),
        3,
        Duration::from_millis(10),
    );
    assert_eq!(answers.len(), 3);
    for answer in &answers {
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nHello, World!"), "{answer}");
    }
    let log = log(&events);
    let text = log.join("\n");
    for line in [
        "*** Operational MODE: preforking ***",
        "uwsgi socket 0 bound to TCP address :8000 fd 3",
        "spawned uWSGI master process (pid: ",
        "spawned uWSGI worker 1 (pid: ",
        "spawned uWSGI worker 2 (pid: ",
        "GET / => generated 13 bytes in ",
    ] {
        assert!(
            text.contains(line),
            "no {line:?} in the simulated log:\n{text}"
        );
    }
    assert!(events
        .iter()
        .any(|e| e.category == Category::Net && e.kind == EventKind::Accepted));
}

#[test]
fn the_same_scenario_and_seed_give_the_same_trace_byte_for_byte() {
    let args = [
        "--http11-socket",
        ":8000",
        "--wsgi-file",
        "hello.py",
        "--master",
        "--processes",
        "2",
    ];
    let (first, _) = run(setup(&args), 4, Duration::from_millis(3));
    let (second, _) = run(setup(&args), 4, Duration::from_millis(3));
    assert!(first.len() > 20);
    assert_eq!(
        serde_json::to_string(&first).unwrap(),
        serde_json::to_string(&second).unwrap()
    );
}

#[test]
fn started_in_the_wrong_directory_the_simulated_server_explains_itself() {
    let mut wrong = setup(&["--http-socket", ":8000", "--module", "hello", "--need-app"]);
    wrong.cwd = "/srv".into();
    let (events, answers) = run(wrong, 0, Duration::ZERO);
    assert!(answers.is_empty());
    let text = log(&events).join("\n");
    assert!(
        text.contains("ModuleNotFoundError: No module named 'hello'"),
        "{text}"
    );
    assert!(text.contains("*** no app loaded. GAME OVER ***"), "{text}");
    assert!(
        text.contains(
            "hint: 'hello' is in /srv/app: start wsgilab from there, or pass --chdir /srv/app"
        ),
        "{text}"
    );
}

#[test]
fn harakiri_in_the_simulation_fires_at_n_plus_the_masters_tick() {
    let mut slow = setup(&[
        "--http-socket",
        ":8000",
        "--wsgi-file",
        "hello.py",
        "--master",
        "--processes",
        "1",
        "--harakiri",
        "2",
    ]);
    slow.app.routes.push(sim::python::Route {
        path: "/slow".into(),
        method: None,
        behaviour: sim::python::RouteBehaviour {
            sleep_ms: 5000,
            ..Default::default()
        },
    });
    let (events, answers) = run_path(slow, "/slow", 1, Duration::ZERO);
    assert_eq!(
        answers,
        [String::new()],
        "the client of a harakiri'd request gets nothing"
    );
    let harakiri = events
        .iter()
        .find(|e| e.text.contains("*** HARAKIRI ON WORKER 1"))
        .expect("harakiri");
    // Sent at 0.1 s, over the limit at 2.1 s, seen at the master's next tick.
    assert!(
        (2_100_000..=3_100_000).contains(&harakiri.at_us),
        "{}",
        harakiri.at_us
    );
    let text = log(&events).join("\n");
    assert!(text.contains("DAMN ! worker 1 (pid: "), "{text}");
    assert!(
        text.contains("Respawned uWSGI worker 1 (new pid: "),
        "{text}"
    );
}
