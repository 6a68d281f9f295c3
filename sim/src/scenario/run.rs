//! Replaying a scenario: the server machine runs the real `wsgilab serve` (see
//! [`crate::world`]), each client group's connections run on their host, a lab task fires the
//! faults and decides when the run is over. Every client writes down what it saw — when it
//! started, when `connect()` returned, when the first byte and the whole response came, and how
//! it ended — and the trace records the rest; the request table joins the two by connection.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use server::net::Net;
use server::procs::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::{parse_worker, split_command, ClientGroup, Fault, Scenario, SERVER_HOST};
use crate::files::FileTree;
use crate::net::{SimNet, SimStream, Sysctls};
use crate::procs::{Machine, MachineSpec};
use crate::trace::{now, Category, Event, Trace};
use crate::world::{run_server, ServerSetup};

/// One request as its client lived it (times in virtual microseconds from the start).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RequestRecord {
    /// `client#3`: the group's name and the client's number in the run.
    pub client: String,
    pub host: String,
    /// The connection, by the client's address, once known.
    pub conn: Option<String>,
    /// The request's number on its connection (1 unless keep-alive).
    pub seq: u32,
    pub method: String,
    pub path: String,
    pub start_us: u64,
    pub connected_us: Option<u64>,
    pub sent_us: Option<u64>,
    pub first_byte_us: Option<u64>,
    pub done_us: Option<u64>,
    /// `200`, `refused`, `reset`, `no_response`, `timeout`, `gave_up`, `client_closed`,
    /// `cut`, `unfinished`.
    pub outcome: String,
    /// The outcome in words (`200 OK, 13 bytes`, `connect(): ECONNREFUSED`, ...).
    pub detail: String,
}

/// One replay of one command line.
#[derive(Clone, Debug, Serialize)]
pub struct RunOutput {
    pub variant: Option<String>,
    pub command: String,
    pub seed: u64,
    pub events: Vec<Event>,
    pub requests: Vec<RequestRecord>,
    /// The server process's exit status (on `server`); `None` if it was still running at the
    /// end.
    pub exit_status: Option<i32>,
    /// Every server machine, `server` first.
    pub servers: Vec<String>,
    pub end_us: u64,
}

/// Replays every command line of the scenario with `seed`.
pub fn run_scenario(scenario: &Scenario, seed: u64) -> Vec<RunOutput> {
    scenario
        .commands()
        .into_iter()
        .map(|(variant, command)| run_command(scenario, variant, &command, seed))
        .collect()
}

/// What the clients and the lab share during a run.
#[derive(Clone, Default)]
struct Shared {
    trace: Trace,
    requests: Arc<Mutex<Vec<RequestRecord>>>,
    /// Each server host's machine, once it exists.
    machines: Arc<Mutex<BTreeMap<String, Machine>>>,
    /// Each server host's exit status, once its server exited.
    exits: Arc<Mutex<BTreeMap<String, i32>>>,
    /// Connections not finished yet.
    pending: Arc<AtomicUsize>,
    changed: Arc<Notify>,
}

/// One client connection's plan.
#[derive(Clone)]
struct Plan {
    label: String,
    group: ClientGroup,
    start: Duration,
}

fn run_command(
    scenario: &Scenario,
    variant: Option<String>,
    command: &str,
    seed: u64,
) -> RunOutput {
    let trace = Trace::default();
    let setup = server_setup(scenario, command);
    let server_sysctls = scenario.machine.sysctls.apply(Sysctls {
        somaxconn: setup.machine.somaxconn,
        ..Sysctls::default()
    });
    let net = SimNet::new(trace.clone(), SERVER_HOST, server_sysctls.clone());
    if scenario.machine.uid == 0 {
        net.set_privileged(true);
    }
    let plans = plan_clients(scenario, seed);
    let shared = Shared {
        trace: trace.clone(),
        ..Shared::default()
    };
    shared.pending.store(plans.len(), Ordering::SeqCst);

    let limit = Duration::from_secs(scenario.time_limit_s);
    let mut sim = turmoil::Builder::new()
        .epoch(UNIX_EPOCH + Duration::from_secs(setup.machine.epoch_unix))
        .simulation_duration(limit + Duration::from_secs(5))
        .rng_seed(seed)
        .build();

    // The servers first, so that their addresses are the same in every run.
    let servers = scenario.servers();
    for host in &servers {
        let net = if host == SERVER_HOST {
            net.clone()
        } else {
            net.with_host(host, server_sysctls.clone())
        };
        if scenario.machine.uid == 0 {
            net.set_privileged(true);
        }
        let (setup, trace, shared) = (setup.clone(), trace.clone(), shared.clone());
        let local: Vec<Plan> = plans
            .iter()
            .filter(|p| &p.group.host == host)
            .cloned()
            .collect();
        let busy_ports = scenario.machine.busy_ports.clone();
        let name = host.clone();
        sim.host(host.as_str(), move || {
            let (setup, net, trace, shared) =
                (setup.clone(), net.clone(), trace.clone(), shared.clone());
            let (busy_ports, local, name) = (busy_ports.clone(), local.clone(), name.clone());
            async move {
                let squatters = occupy_ports(&net, &busy_ports, &trace);
                spawn_clients(&net, &local, &shared);
                let machines = shared.machines.clone();
                let status = run_server(setup, net, trace, move |machine| {
                    machines
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(machine.host.clone(), machine.clone());
                })
                .await;
                shared
                    .exits
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name, status);
                shared.changed.notify_waiters();
                let _squatters = squatters;
                // Loopback clients may still be waiting for their outcome.
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }
    if let Some(spec) = &scenario.balancer {
        let lb_net = net.with_host(&spec.host, Sysctls::default());
        // nginx's master runs as root to bind port 80.
        lb_net.set_privileged(true);
        let (spec, trace) = (spec.clone(), trace.clone());
        let epoch = setup.machine.epoch_unix;
        sim.host(spec.host.clone().as_str(), move || {
            let (spec, lb_net, trace) = (spec.clone(), lb_net.clone(), trace.clone());
            async move {
                super::balancer::run_balancer(spec, lb_net, trace, epoch).await;
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }
    let mut hosts: Vec<String> = plans
        .iter()
        .map(|p| p.group.host.clone())
        .filter(|h| !servers.contains(h))
        .collect();
    hosts.sort();
    hosts.dedup();
    for host in hosts {
        let client_net = net.with_host(&host, Sysctls::default());
        let local: Vec<Plan> = plans
            .iter()
            .filter(|p| p.group.host == host)
            .cloned()
            .collect();
        let shared = shared.clone();
        sim.host(host.as_str(), move || {
            let (client_net, local, shared) = (client_net.clone(), local.clone(), shared.clone());
            async move {
                spawn_clients(&client_net, &local, &shared);
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }
    {
        let (shared, trace) = (shared.clone(), trace.clone());
        let faults = scenario.faults_of(variant.as_deref()).to_vec();
        let linger = Duration::from_millis(scenario.linger_ms);
        sim.client("lab", async move {
            let lab = async {
                let mut faults = faults;
                faults.sort_by_key(|f| f.at_ms);
                for fault in &faults {
                    tokio::time::sleep_until(at(fault.at_ms)).await;
                    apply_fault(fault, &shared, &trace);
                }
                loop {
                    let changed = shared.changed.notified();
                    if shared.pending.load(Ordering::SeqCst) == 0 {
                        break;
                    }
                    changed.await;
                }
                // What follows the last client (respawns, the master's tick), unless the
                // server is gone.
                let settle = async {
                    loop {
                        let changed = shared.changed.notified();
                        if shared
                            .exits
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .contains_key(SERVER_HOST)
                        {
                            break;
                        }
                        changed.await;
                    }
                };
                let _ = tokio::time::timeout(linger, settle).await;
            };
            let _ = tokio::time::timeout(limit, lab).await;
            Ok(())
        });
    }
    if let Err(e) = sim.run() {
        trace.record(
            "lab",
            None,
            Category::Proc,
            "sim_error",
            format!("the simulation stopped: {e}"),
        );
    }
    let end_us = trace.events().last().map_or(0, |e| e.at_us);
    let events = trace.events();
    let mut requests = shared
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    requests.sort_by_key(|r| (client_number(&r.client), r.seq));
    let exit_status = shared
        .exits
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(SERVER_HOST)
        .copied();
    RunOutput {
        variant,
        command: command.to_string(),
        seed,
        events,
        requests,
        exit_status,
        servers,
        end_us,
    }
}

fn client_number(label: &str) -> u64 {
    label
        .rsplit('#')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn at(ms: u64) -> tokio::time::Instant {
    let elapsed = now();
    tokio::time::Instant::now() + Duration::from_millis(ms).saturating_sub(elapsed)
}

/// The server machine as the scenario describes it, with the command's arguments.
fn server_setup(scenario: &Scenario, command: &str) -> ServerSetup {
    let mut files = FileTree::new();
    for (path, content) in &scenario.files {
        files.add_file(path, content.as_str());
    }
    for dir in &scenario.dirs {
        files.add_dir(dir);
    }
    let m = &scenario.machine;
    let sysctls = m.sysctls.apply(Sysctls::default());
    let machine = MachineSpec {
        nodename: m.nodename.clone(),
        cores: m.cores,
        somaxconn: sysctls.somaxconn,
        uid: m.uid,
        ..MachineSpec::default()
    };
    ServerSetup {
        machine,
        files,
        python: scenario.python.clone().unwrap_or_default(),
        app: scenario.app.clone(),
        cwd: PathBuf::from(&m.cwd),
        env: m.env.clone(),
        // Validated when the scenario was read.
        args: split_command(command).unwrap_or_default(),
    }
}

/// Another program's listening sockets, held (and served) for the whole run.
fn occupy_ports(net: &SimNet, ports: &[u16], trace: &Trace) -> Vec<tokio::task::JoinHandle<()>> {
    let mut squatters = Vec::new();
    for port in ports {
        match net.bind(SocketAddr::from(([0, 0, 0, 0], *port)), 128) {
            Ok(listener) => {
                trace.record(
                    net.host(),
                    None,
                    Category::Proc,
                    "squatter",
                    format!("an older server is already running and listens on port {port}"),
                );
                squatters.push(tokio::task::spawn_local(serve_old_version(listener)));
            }
            Err(e) => trace.record(
                net.host(),
                None,
                Category::Proc,
                "squatter",
                format!("another program could not take port {port}: {e}"),
            ),
        }
    }
    squatters
}

/// The program that already had the port: it answers every request, with the old code.
async fn serve_old_version(listener: crate::net::SimListener) {
    use server::net::Listener;
    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nConnection: close\r\n\r\nthe old version, still";
    while let Ok((mut stream, _)) = listener.accept().await {
        tokio::task::spawn_local(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(ANSWER).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Every client connection of the run, numbered in the order of the file, with its start time
/// (jitter drawn from the seed in that same order).
fn plan_clients(scenario: &Scenario, seed: u64) -> Vec<Plan> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut plans = Vec::new();
    for group in &scenario.clients {
        let name = group.name.clone().unwrap_or_else(|| "client".into());
        for i in 0..group.count {
            let jitter = if group.jitter_ms > 0 {
                rng.next_u64() % (group.jitter_ms + 1)
            } else {
                0
            };
            plans.push(Plan {
                label: format!("{name}#{}", plans.len() + 1),
                group: group.clone(),
                start: Duration::from_millis(group.at_ms + u64::from(i) * group.every_ms + jitter),
            });
        }
    }
    plans
}

fn spawn_clients(net: &SimNet, plans: &[Plan], shared: &Shared) {
    for plan in plans {
        let (net, plan, shared) = (net.clone(), plan.clone(), shared.clone());
        tokio::task::spawn_local(async move {
            tokio::time::sleep_until(at(plan.start.as_millis() as u64)).await;
            run_connection(&net, &plan, &shared).await;
            shared.pending.fetch_sub(1, Ordering::SeqCst);
            shared.changed.notify_waiters();
        });
    }
}

/// The bytes of request `seq` of a client.
fn request_bytes(group: &ClientGroup) -> Vec<u8> {
    if let Some(raw) = &group.raw {
        return raw.chars().map(|c| c as u32 as u8).collect();
    }
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n",
        group.method, group.path, group.to, group.port
    );
    for (name, value) in &group.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = &group.body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if let Some(body) = &group.body {
        bytes.extend_from_slice(body.as_bytes());
    }
    bytes
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// One client: connect, send each request, read each response, record what happened.
async fn run_connection(net: &SimNet, plan: &Plan, shared: &Shared) {
    let group = &plan.group;
    // A client on the server machine itself talks to it over loopback (`curl localhost:8000`).
    let ip = if group.host == group.to {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        turmoil::lookup(group.to.as_str())
    };
    let server = SocketAddr::new(ip, group.port);
    let started = now();
    let deadline = started + Duration::from_millis(group.timeout_ms);
    let mut record = RequestRecord {
        client: plan.label.clone(),
        host: group.host.clone(),
        conn: None,
        seq: 1,
        method: group.method.clone(),
        path: group.path.clone(),
        start_us: us(started),
        connected_us: None,
        sent_us: None,
        first_byte_us: None,
        done_us: None,
        outcome: "unfinished".into(),
        detail: "still waiting when the run ended".into(),
    };
    let push = |record: &RequestRecord| {
        shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record.clone());
    };
    // Recorded before the attempt, so that a run cut short still lists it.
    push(&record);
    let say = |conn: Option<&str>, kind: &str, text: String| {
        shared.trace.record_conn(
            &group.host,
            None,
            Category::Client,
            conn.and_then(|c| c.parse().ok()),
            kind,
            format!("{}: {text}", plan.label),
        );
    };
    say(
        None,
        "connect",
        format!("connect() to {}:{}", group.to, group.port),
    );
    let update = |record: &RequestRecord| {
        let mut requests = shared.requests.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = requests
            .iter_mut()
            .find(|r| r.client == record.client && r.seq == record.seq)
        {
            *slot = record.clone();
        }
    };
    let connected = tokio::time::timeout_at(
        tokio::time::Instant::now() + deadline.saturating_sub(now()),
        net.connect(server),
    )
    .await;
    let mut stream = match connected {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            finish_failed_connect(&mut record, &e);
            say(None, "outcome", record.detail.clone());
            update(&record);
            return;
        }
        Err(_) => {
            record.done_us = Some(us(now()));
            record.outcome = "gave_up".into();
            record.detail = format!(
                "gave up after {} ms: connect() had not returned",
                group.timeout_ms
            );
            say(None, "outcome", record.detail.clone());
            update(&record);
            return;
        }
    };
    record.conn = stream.local_addr().ok().map(|a| a.to_string());
    record.connected_us = Some(us(now()));
    update(&record);
    let conn = record.conn.clone();
    let conn = conn.as_deref();
    say(
        conn,
        "connected",
        format!(
            "connect() returned after {}: connected as {}",
            crate::scenario::render::ms(record.connected_us.unwrap_or(0) - record.start_us),
            conn.unwrap_or("?")
        ),
    );
    let bytes = request_bytes(group);
    let mut leftover = Vec::new();
    for seq in 1..=group.requests {
        if seq > 1 {
            record.seq = seq;
            record.start_us = us(now());
            record.connected_us = record.connected_us.map(|_| us(now()));
            record.sent_us = None;
            record.first_byte_us = None;
            record.done_us = None;
            record.outcome = "unfinished".into();
            record.detail = "still waiting when the run ended".into();
            push(&record);
        }
        let request_deadline =
            tokio::time::Instant::now() + Duration::from_millis(group.timeout_ms);
        if let Err(e) = send(&mut stream, &bytes, group.bytes_per_s).await {
            // The server may have answered before giving up on the request (a 408, a 431):
            // what it sent is still there to read, as curl reads it.
            let mut early = record.clone();
            let answered = tokio::time::timeout(
                Duration::from_millis(100),
                read_response(&mut stream, &mut leftover, &mut early),
            )
            .await;
            if matches!(answered, Ok(Ok(_))) && early.outcome.len() == 3 {
                early.detail = format!(
                    "{} (answered before the request was complete; then {} sending the rest)",
                    early.detail,
                    errno_name(&e)
                );
                say(conn, "outcome", early.detail.clone());
                update(&early);
                return;
            }
            record.done_us = Some(us(now()));
            (record.outcome, record.detail) = io_outcome(&e, "sending the request");
            say(conn, "outcome", record.detail.clone());
            update(&record);
            return;
        }
        record.sent_us = Some(us(now()));
        update(&record);
        say(
            conn,
            "sent",
            format!(
                "sent {} {} ({} bytes)",
                group.method,
                group.path,
                bytes.len()
            ),
        );
        let give_up_at = match group.disconnect_after_ms {
            Some(ms) => {
                request_deadline.min(tokio::time::Instant::now() + Duration::from_millis(ms))
            }
            None => request_deadline,
        };
        let read = read_response(&mut stream, &mut leftover, &mut record);
        match tokio::time::timeout_at(give_up_at, read).await {
            Ok(Ok(keep_going)) => {
                say(conn, "outcome", record.detail.clone());
                update(&record);
                if !keep_going {
                    return;
                }
            }
            Ok(Err(e)) => {
                record.done_us = Some(us(now()));
                if record.first_byte_us.is_some() {
                    record.outcome = "cut".into();
                    record.detail = format!("the response was cut short: {}", errno_name(&e));
                } else {
                    (record.outcome, record.detail) = io_outcome(&e, "waiting for the response");
                }
                say(conn, "outcome", record.detail.clone());
                update(&record);
                return;
            }
            Err(_) => {
                record.done_us = Some(us(now()));
                if group.disconnect_after_ms.is_some()
                    && tokio::time::Instant::now() < request_deadline
                {
                    record.outcome = "client_closed".into();
                    record.detail = format!(
                        "the client hung up {} ms after sending, before the response",
                        group.disconnect_after_ms.unwrap_or(0)
                    );
                } else {
                    record.outcome = "gave_up".into();
                    record.detail = format!(
                        "gave up after {} ms without a complete response",
                        group.timeout_ms
                    );
                }
                say(conn, "outcome", record.detail.clone());
                update(&record);
                // Dropping the stream closes the connection, as the client's exit would.
                return;
            }
        }
    }
    let _ = stream.shutdown().await;
}

fn finish_failed_connect(record: &mut RequestRecord, e: &io::Error) {
    record.done_us = Some(us(now()));
    match e.raw_os_error() {
        Some(111) => {
            record.outcome = "refused".into();
            record.detail = "connect(): ECONNREFUSED (nothing listens there)".into();
        }
        Some(110) => {
            record.outcome = "timeout".into();
            record.detail =
                "connect(): ETIMEDOUT (every SYN retransmission went unanswered)".into();
        }
        _ => {
            record.outcome = "reset".into();
            record.detail = format!("connect(): {}", errno_name(e));
        }
    }
}

fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(104) => "ECONNRESET".into(),
        Some(32) => "EPIPE".into(),
        Some(110) => "ETIMEDOUT".into(),
        Some(111) => "ECONNREFUSED".into(),
        _ => e.to_string(),
    }
}

fn io_outcome(e: &io::Error, during: &str) -> (String, String) {
    match e.raw_os_error() {
        Some(110) => ("timeout".into(), format!("ETIMEDOUT {during}")),
        _ => ("reset".into(), format!("{} {during}", errno_name(e))),
    }
}

/// Writes the request, all at once or `bytes_per_s` slowly.
async fn send(stream: &mut SimStream, bytes: &[u8], bytes_per_s: Option<u64>) -> io::Result<()> {
    match bytes_per_s {
        None => stream.write_all(bytes).await,
        Some(rate) => {
            let gap = Duration::from_micros(1_000_000 / rate.max(1));
            for (i, byte) in bytes.iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(gap).await;
                }
                stream.write_all(std::slice::from_ref(byte)).await?;
            }
            Ok(())
        }
    }
}

/// Reads one response; whether the connection can carry another request.
async fn read_response(
    stream: &mut SimStream,
    buf: &mut Vec<u8>,
    record: &mut RequestRecord,
) -> io::Result<bool> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if let Some(done) = complete_response(buf) {
            let (status, reason, length, keep) = done;
            buf.drain(..length);
            record.done_us = Some(us(now()));
            record.outcome = status.to_string();
            record.detail = format!("{status} {reason}, {length} bytes");
            return Ok(keep);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            record.done_us = Some(us(now()));
            if buf.is_empty() {
                record.outcome = "no_response".into();
                record.detail = "the connection closed without a response".into();
            } else if let Some((status, reason)) = status_of(buf) {
                // A response without a length ends with the connection.
                if framing_is_eof(buf) {
                    record.outcome = status.to_string();
                    record.detail = format!("{status} {reason}, {} bytes", buf.len());
                } else {
                    record.outcome = "cut".into();
                    record.detail =
                        format!("{status} {reason} cut short after {} bytes", buf.len());
                }
                buf.clear();
            } else {
                record.outcome = "cut".into();
                record.detail = format!("{} bytes that are not a whole response head", buf.len());
                buf.clear();
            }
            return Ok(false);
        }
        if record.first_byte_us.is_none() {
            record.first_byte_us = Some(us(now()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn status_of(buf: &[u8]) -> Option<(u16, String)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(_)) => Some((
            response.code.unwrap_or(0),
            response.reason.unwrap_or("").to_string(),
        )),
        _ => None,
    }
}

fn framing_is_eof(buf: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    if response.parse(buf).is_err() {
        return false;
    }
    !response.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("content-length")
            || (h.name.eq_ignore_ascii_case("transfer-encoding")
                && String::from_utf8_lossy(h.value)
                    .to_ascii_lowercase()
                    .contains("chunked"))
    })
}

/// A whole response at the start of `buf`: (status, reason, its length, keep-alive).
pub(crate) fn complete_response(buf: &[u8]) -> Option<(u16, String, usize, bool)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let status = response.code.unwrap_or(0);
    let reason = response.reason.unwrap_or("").to_string();
    let mut length = None;
    let mut chunked = false;
    let mut close = response.version == Some(0);
    for h in response.headers.iter() {
        let value = String::from_utf8_lossy(h.value).trim().to_ascii_lowercase();
        if h.name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.contains("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = value.contains("close");
        }
    }
    if (100..200).contains(&status) {
        return None;
    }
    let body_len = if chunked {
        chunked_length(&buf[head_len..])?
    } else if let Some(length) = length {
        if buf.len() < head_len + length {
            return None;
        }
        length
    } else if status == 204 || status == 304 {
        0
    } else {
        // Ends with the connection.
        return None;
    };
    Some((status, reason, head_len + body_len, !close))
}

/// The length of a complete chunked body at the start of `body`.
fn chunked_length(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line_end = body[at..].windows(2).position(|w| w == b"\r\n")? + at;
        let size_text = String::from_utf8_lossy(&body[at..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let end = body[at..].windows(2).position(|w| w == b"\r\n")? + at;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some(at);
                }
            }
        }
        if body.len() < at + size + 2 {
            return None;
        }
        at += size + 2;
    }
}

/// Sends the fault's signal to its target, as `kill -SIG pid` would.
fn apply_fault(fault: &Fault, shared: &Shared, trace: &Trace) {
    let signal = Signal::from_number(fault.signal.0);
    let short = signal.name().trim_start_matches("SIG").to_string();
    let host = fault.host.as_str();
    let machine = shared
        .machines
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(host)
        .cloned();
    let Some(machine) = machine else {
        trace.record(
            host,
            None,
            Category::Proc,
            "fault_missed",
            format!("kill -{short} ({}): the server has not started", fault.to),
        );
        return;
    };
    let master = machine
        .processes()
        .into_iter()
        .find(|(_, parent, _)| parent.is_none())
        .map(|(pid, _, _)| pid);
    if fault.to == "all" {
        // The master first, so that it does not respawn the workers that die with it.
        let mut pids: Vec<u32> = master.into_iter().collect();
        pids.extend(
            machine
                .processes()
                .into_iter()
                .map(|(pid, _, _)| pid)
                .filter(|pid| Some(*pid) != master),
        );
        trace.record(
            host,
            None,
            Category::Proc,
            "kill",
            format!(
                "kill -{short} of every process of the server at once ({}), as the OOM killer or a crash would",
                pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            ),
        );
        for pid in pids {
            machine.kill(pid, signal);
        }
        return;
    }
    let target = match parse_worker(&fault.to) {
        Some(n) => worker_pid(&trace.events(), host, n),
        None => master,
    };
    let Some(pid) = target.filter(|pid| machine.is_alive(*pid)) else {
        trace.record(
            host,
            None,
            Category::Proc,
            "fault_missed",
            format!("kill -{short} ({}): no such process is running", fault.to),
        );
        return;
    };
    trace.record(
        host,
        Some(pid),
        Category::Proc,
        "kill",
        format!("kill -{short} {pid} ({}), typed by the operator", fault.to),
    );
    let handled_by_master = fault.to == "master"
        && matches!(
            signal,
            Signal::Term | Signal::Int | Signal::Quit | Signal::Hup
        )
        && machine.signal_master(signal);
    if !handled_by_master {
        machine.kill(pid, signal);
    }
}

/// Worker `n`'s current pid, as the server's log announced it.
fn worker_pid(events: &[Event], host: &str, n: usize) -> Option<u32> {
    let spawned = format!("spawned uWSGI worker {n} (pid: ");
    let respawned = format!("Respawned uWSGI worker {n} (new pid: ");
    events
        .iter()
        .rev()
        .filter(|e| e.category == Category::Log && e.host == host)
        .find_map(|e| {
            let rest = e
                .text
                .strip_prefix(&spawned)
                .or_else(|| e.text.strip_prefix(&respawned))?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
}

/// The servers' log lines of a run, as printed (and the balancer's, if there is one).
pub fn server_log(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e.category == Category::Log)
        .map(|e| e.text.as_str())
        .collect()
}

/// Outcome → count.
pub fn outcome_counts(requests: &[RequestRecord]) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for r in requests {
        *counts.entry(r.outcome.clone()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_framed_by_length_chunks_or_not_at_all() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1";
        assert_eq!(complete_response(r), Some((200, "OK".into(), 40, true)));
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        assert_eq!(
            complete_response(r).map(|c| (c.2, c.3)),
            Some((r.len(), false))
        );
        assert_eq!(complete_response(b"HTTP/1.1 200 OK\r\n\r\nabc"), None);
        assert!(framing_is_eof(b"HTTP/1.1 200 OK\r\n\r\nabc"));
        assert_eq!(
            complete_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"),
            None
        );
    }
}
