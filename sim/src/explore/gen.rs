//! Generators: a whole [`Scenario`] from a seed — the server's command line, the app's routes,
//! the clients and the faults — as proptest strategies, so that a failing scenario shrinks to
//! a small one. Swarm testing: each scenario first draws which features it uses (crashing
//! routes, slow clients, SIGHUP, ...), so that one seed exercises a few things hard instead of
//! everything a little, and a shrunk scenario loses whole features at once.
//!
//! Scenarios stay small (clients start within 2 s and give up within 4 s, at most 40 clients,
//! faults within 2.5 s, a 30 s limit) because a run costs in proportion to its virtual time:
//! the simulation steps every virtual millisecond.

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;
use proptest::sample::select;

use crate::python::{AppBehaviour, CrashSignal, Route, RouteBehaviour};
use crate::scenario::{
    ClientGroup, Expect, Fault, FaultTarget, MachineSection, Scenario, SERVER_HOST,
};

/// The server's command line, as drawn.
#[derive(Clone, Debug)]
pub struct ServerKnobs {
    pub processes: u32,
    pub threads: u32,
    pub listen: u32,
    pub harakiri: u64,
    pub max_requests: u64,
    pub buffer_size: Option<u32>,
    pub lazy_apps: bool,
    pub http11: bool,
    pub master: bool,
}

impl ServerKnobs {
    pub fn command(&self) -> String {
        let mut c = format!(
            "uwsgi --{} :8000 --wsgi-file app.py --processes {} --threads {} --listen {}",
            if self.http11 {
                "http11-socket"
            } else {
                "http-socket"
            },
            self.processes,
            self.threads,
            self.listen
        );
        if self.master {
            c.push_str(" --master");
        }
        if self.lazy_apps {
            c.push_str(" --lazy-apps");
        }
        if self.harakiri > 0 {
            c.push_str(&format!(" --harakiri {}", self.harakiri));
        }
        if self.max_requests > 0 {
            c.push_str(&format!(" --max-requests {}", self.max_requests));
        }
        if let Some(size) = self.buffer_size {
            c.push_str(&format!(" --buffer-size {size}"));
        }
        c
    }
}

fn server_knobs() -> impl Strategy<Value = ServerKnobs> {
    (
        (1u32..=4, 1u32..=4, 2u32..=100),
        (
            prop_oneof![Just(0u64), 1u64..=5],
            prop_oneof![Just(0u64), 2u64..=20],
        ),
        prop_oneof![
            Just(None),
            select(vec![512u32, 1024, 4096, 8192]).prop_map(Some)
        ],
        (any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |((processes, threads, listen), (harakiri, max_requests), buffer_size, flags)| {
                ServerKnobs {
                    processes,
                    threads,
                    listen,
                    harakiri,
                    max_requests,
                    buffer_size,
                    lazy_apps: flags.0,
                    http11: flags.1,
                    master: flags.2,
                }
            },
        )
}

/// The features a scenario may use; each seed draws a subset (all `false` shrinks to the
/// plainest scenario: fast routes, polite clients, no faults).
#[derive(Clone, Copy, Debug, Default)]
pub struct Swarm {
    pub raise: bool,
    pub crash: bool,
    pub hang: bool,
    pub leak: bool,
    pub big_bodies: bool,
    pub slow_clients: bool,
    pub disconnects: bool,
    pub bad_requests: bool,
    pub keep_alive: bool,
    pub kill_worker: bool,
    pub sighup: bool,
    pub sigterm: bool,
    pub sigint: bool,
    pub kill_all: bool,
}

fn swarm() -> impl Strategy<Value = Swarm> {
    // Each feature is on with probability 1/3: a typical seed has four or five.
    let bit = || prop::bool::weighted(1.0 / 3.0);
    (
        (bit(), bit(), bit(), bit(), bit(), bit(), bit()),
        (bit(), bit(), bit(), bit(), bit(), bit(), bit()),
    )
        .prop_map(|(a, b)| Swarm {
            raise: a.0,
            crash: a.1,
            hang: a.2,
            leak: a.3,
            big_bodies: a.4,
            slow_clients: a.5,
            disconnects: a.6,
            bad_requests: b.0,
            keep_alive: b.1,
            kill_worker: b.2,
            sighup: b.3,
            sigterm: b.4,
            sigint: b.5,
            kill_all: b.6,
        })
}

/// The routes every app has: the default (`/`), and one per behaviour, whether the swarm
/// sends clients there or not.
#[derive(Clone, Debug)]
struct AppKnobs {
    default_cpu: u64,
    default_sleep: u64,
    cpu_ms: u64,
    sleep_ms: u64,
    body_bytes: u64,
    leak_bytes: u64,
}

fn app_knobs() -> impl Strategy<Value = AppKnobs> {
    (
        0u64..=20,
        0u64..=50,
        1u64..=300,
        1u64..=1500,
        1u64..=300_000,
        1u64..=(64 << 20),
    )
        .prop_map(
            |(default_cpu, default_sleep, cpu_ms, sleep_ms, body_bytes, leak_bytes)| AppKnobs {
                default_cpu,
                default_sleep,
                cpu_ms,
                sleep_ms,
                body_bytes,
                leak_bytes,
            },
        )
}

/// Paths the clients can ask for; the swarm removes those of disabled features.
const PATHS: &[&str] = &[
    "/", "/cpu", "/slow", "/raise", "/crash", "/hang", "/leak", "/big",
];

/// Bad requests a client may send instead of a well-formed one.
const RAW: &[&str] = &[
    "GARBAGE\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: server\r\nContent-Length: abc\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: ser",
    "POST / HTTP/1.1\r\nHost: server\r\nContent-Length: 10\r\n\r\nabc",
    "GET / HTTP/1.1\r\nHost: server\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "GET /\r\n\r\n",
];

#[derive(Clone, Debug)]
struct GroupKnobs {
    path: usize,
    count: u32,
    at_ms: u64,
    every_ms: u64,
    jitter_ms: u64,
    timeout_ms: u64,
    slow: (bool, u64),
    disconnect: (bool, u64),
    raw: (bool, usize),
    requests: u32,
    big_head: bool,
}

fn group_knobs() -> impl Strategy<Value = GroupKnobs> {
    (
        (0usize..PATHS.len(), 1u32..=10, 0u64..=2000, 0u64..=200),
        (0u64..=100, 1000u64..=4000),
        (any::<bool>(), 200u64..=5000),
        (any::<bool>(), 10u64..=1500),
        (any::<bool>(), 0usize..RAW.len()),
        (1u32..=3, prop::bool::weighted(0.1)),
    )
        .prop_map(
            |(
                (path, count, at_ms, every_ms),
                (jitter_ms, timeout_ms),
                slow,
                disconnect,
                raw,
                (requests, big_head),
            )| {
                GroupKnobs {
                    path,
                    count,
                    at_ms,
                    every_ms,
                    jitter_ms,
                    timeout_ms,
                    slow,
                    disconnect,
                    raw,
                    requests,
                    big_head,
                }
            },
        )
}

#[derive(Clone, Debug)]
struct FaultKnobs {
    /// 0: SIGKILL a worker, 1: SIGSEGV a worker, 2: SIGHUP, 3: SIGTERM, 4: SIGINT to the
    /// master, 5: SIGKILL to every process.
    kind: usize,
    at_ms: u64,
    worker: usize,
}

fn fault_knobs() -> impl Strategy<Value = FaultKnobs> {
    (0usize..6, 0u64..=2500, 1usize..=4).prop_map(|(kind, at_ms, worker)| FaultKnobs {
        kind,
        at_ms,
        worker,
    })
}

/// The whole scenario strategy.
pub fn scenario() -> impl Strategy<Value = Scenario> {
    (
        swarm(),
        server_knobs(),
        app_knobs(),
        prop::collection::vec(group_knobs(), 1..=4),
        prop::collection::vec(fault_knobs(), 0..=3),
        0u64..1_000_000,
    )
        .prop_map(|(swarm, server, app, groups, faults, seed)| {
            build(&swarm, &server, &app, &groups, &faults, seed)
        })
}

fn path_enabled(swarm: &Swarm, path: &str) -> bool {
    match path {
        "/raise" => swarm.raise,
        "/crash" => swarm.crash,
        "/hang" => swarm.hang,
        "/leak" => swarm.leak,
        "/big" => swarm.big_bodies,
        _ => true,
    }
}

fn build(
    swarm: &Swarm,
    server: &ServerKnobs,
    app: &AppKnobs,
    groups: &[GroupKnobs],
    faults: &[FaultKnobs],
    seed: u64,
) -> Scenario {
    let route = |path: &str, behaviour: RouteBehaviour| Route {
        path: path.into(),
        method: None,
        behaviour: RouteBehaviour {
            body: Some("ok".into()),
            content_type: "text/plain".into(),
            ..behaviour
        },
    };
    let plain = RouteBehaviour::default();
    let mut routes = vec![
        route(
            "/cpu",
            RouteBehaviour {
                cpu_ms: app.cpu_ms,
                ..plain.clone()
            },
        ),
        route(
            "/slow",
            RouteBehaviour {
                sleep_ms: app.sleep_ms,
                ..plain.clone()
            },
        ),
    ];
    if swarm.raise {
        routes.push(route(
            "/raise",
            RouteBehaviour {
                raise: Some("RuntimeError: boom".into()),
                ..plain.clone()
            },
        ));
    }
    if swarm.crash {
        routes.push(route(
            "/crash",
            RouteBehaviour {
                crash: Some(CrashSignal(11)),
                ..plain.clone()
            },
        ));
    }
    if swarm.hang {
        routes.push(route(
            "/hang",
            RouteBehaviour {
                hang: true,
                ..plain.clone()
            },
        ));
    }
    if swarm.leak {
        routes.push(route(
            "/leak",
            RouteBehaviour {
                leak_bytes: app.leak_bytes,
                ..plain.clone()
            },
        ));
    }
    if swarm.big_bodies {
        routes.push(route(
            "/big",
            RouteBehaviour {
                body_bytes: Some(app.body_bytes),
                ..plain.clone()
            },
        ));
    }
    let enabled: Vec<&str> = PATHS
        .iter()
        .copied()
        .filter(|p| path_enabled(swarm, p))
        .collect();
    let mut clients = Vec::new();
    let mut total = 0;
    for (i, g) in groups.iter().enumerate() {
        // At most 40 clients in all.
        let count = g.count.min(40 - total);
        if count == 0 {
            break;
        }
        total += count;
        let path = enabled[g.path % enabled.len()];
        let mut headers = Vec::new();
        if g.big_head && swarm.bad_requests {
            headers.push(("Cookie".to_string(), "c".repeat(6000)));
        }
        clients.push(ClientGroup {
            name: Some(format!("g{}", i + 1)),
            host: "client".into(),
            to: SERVER_HOST.into(),
            port: 8000,
            at_ms: g.at_ms,
            count,
            every_ms: g.every_ms,
            jitter_ms: g.jitter_ms,
            method: "GET".into(),
            path: path.into(),
            headers,
            body: None,
            raw: (swarm.bad_requests && g.raw.0).then(|| RAW[g.raw.1].to_string()),
            requests: if swarm.keep_alive { g.requests } else { 1 },
            bytes_per_s: (swarm.slow_clients && g.slow.0).then_some(g.slow.1),
            disconnect_after_ms: (swarm.disconnects && g.disconnect.0).then_some(g.disconnect.1),
            timeout_ms: g.timeout_ms,
        });
    }
    let mut fault_list = Vec::new();
    for f in faults {
        let (enabled, signal, to) = match f.kind {
            0 => (swarm.kill_worker, 9, FaultTarget::Worker(f.worker)),
            1 => (swarm.kill_worker, 11, FaultTarget::Worker(f.worker)),
            2 => (swarm.sighup, 1, FaultTarget::Master),
            3 => (swarm.sigterm, 15, FaultTarget::Master),
            4 => (swarm.sigint, 2, FaultTarget::Master),
            _ => (swarm.kill_all, 9, FaultTarget::All),
        };
        if enabled {
            fault_list.push(Fault {
                at_ms: f.at_ms,
                signal: CrashSignal(signal),
                to,
                host: SERVER_HOST.into(),
            });
        }
    }
    let mut files = BTreeMap::new();
    files.insert(
        "/srv/app/app.py".to_string(),
        "def application(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'ok']\n".to_string(),
    );
    Scenario {
        title: format!("explored scenario (seed {seed})"),
        teaches: "generated by wsgilab explore".into(),
        seed,
        real: false,
        simulated_only: Some("generated by the explorer".into()),
        time_limit_s: 30,
        linger_ms: 500,
        machine: MachineSection {
            cwd: PathBuf::from("/srv/app"),
            cores: 2,
            nodename: "vm".into(),
            uid: 1000,
            env: BTreeMap::new(),
            sysctls: Default::default(),
            busy_ports: Vec::new(),
        },
        more_servers: Vec::new(),
        balancer: None,
        python: None,
        files,
        dirs: Vec::new(),
        command: Some(server.command()),
        variants: Vec::new(),
        app: AppBehaviour {
            routes,
            default: RouteBehaviour {
                cpu_ms: app.default_cpu,
                sleep_ms: app.default_sleep,
                body: Some("ok".into()),
                content_type: "text/plain".into(),
                ..plain
            },
            starts_thread_at_import: false,
            opens_connection_at_import: false,
        },
        clients,
        faults: fault_list,
        expect: Expect::default(),
    }
}
