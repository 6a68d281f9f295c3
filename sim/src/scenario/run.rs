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

use server::net::Net;
use server::procs::Signal;
use tokio::sync::Notify;

use super::client::{
    answer_as_old_version, client_number, plan_clients, run_connection, ClientWorld, Plan,
};
use super::record::{RequestRecord, RunOutput};
use super::{split_command, Fault, FaultTarget, Scenario, SERVER_HOST};
use crate::files::FileTree;
use crate::net::{SimNet, SimStream, Sysctls};
use crate::procs::{Machine, MachineSpec};
use crate::trace::{now, Category, EventKind, Trace};
use crate::world::{run_server, ServerSetup};

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
    let world = RunWorld {
        scenario,
        net: &net,
        plans: &plans,
        shared: &shared,
    };
    world.add_servers(&mut sim, &servers, &setup, &server_sysctls);
    world.add_balancer(&mut sim, setup.machine.epoch_unix);
    world.add_client_hosts(&mut sim, &servers);
    world.add_lab(&mut sim, variant.as_deref(), limit);
    let outcome = sim.run();
    collect(outcome, variant, command, seed, &shared, servers)
}

/// What every host of one run is built from.
struct RunWorld<'a> {
    scenario: &'a Scenario,
    /// The first server's network; every other host joins it.
    net: &'a SimNet,
    plans: &'a [Plan],
    shared: &'a Shared,
}

impl RunWorld<'_> {
    /// The server machines, each running the command (and the older programs holding ports,
    /// and the clients that run on the machine itself).
    fn add_servers(
        &self,
        sim: &mut turmoil::Sim<'_>,
        servers: &[String],
        setup: &ServerSetup,
        server_sysctls: &Sysctls,
    ) {
        let (scenario, net, plans) = (self.scenario, self.net, self.plans);
        let trace = &self.shared.trace;
        let shared = self.shared;
        for host in servers {
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
    }

    /// The load balancer in front of the servers, if the scenario has one.
    fn add_balancer(&self, sim: &mut turmoil::Sim<'_>, epoch: u64) {
        let (scenario, net) = (self.scenario, self.net);
        let trace = &self.shared.trace;
        if let Some(spec) = &scenario.balancer {
            let lb_net = net.with_host(&spec.host, Sysctls::default());
            // nginx's master runs as root to bind port 80.
            lb_net.set_privileged(true);
            let (spec, trace) = (spec.clone(), trace.clone());
            sim.host(spec.host.clone().as_str(), move || {
                let (spec, lb_net, trace) = (spec.clone(), lb_net.clone(), trace.clone());
                async move {
                    super::balancer::run_balancer(spec, lb_net, trace, epoch).await;
                    std::future::pending::<()>().await;
                    Ok(())
                }
            });
        }
    }

    /// The other machines the clients run on.
    fn add_client_hosts(&self, sim: &mut turmoil::Sim<'_>, servers: &[String]) {
        let (net, plans) = (self.net, self.plans);
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
            let shared = self.shared.clone();
            sim.host(host.as_str(), move || {
                let (client_net, local, shared) =
                    (client_net.clone(), local.clone(), shared.clone());
                async move {
                    spawn_clients(&client_net, &local, &shared);
                    std::future::pending::<()>().await;
                    Ok(())
                }
            });
        }
    }

    /// The lab: fires the faults, then waits for every client and what follows the last one.
    fn add_lab(&self, sim: &mut turmoil::Sim<'_>, variant: Option<&str>, limit: Duration) {
        let scenario = self.scenario;
        let (shared, trace) = (self.shared.clone(), self.shared.trace.clone());
        let faults = scenario.faults_of(variant).to_vec();
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
}

/// The run's records, once the simulation has stopped (with `outcome`).
fn collect(
    outcome: turmoil::Result,
    variant: Option<String>,
    command: &str,
    seed: u64,
    shared: &Shared,
    servers: Vec<String>,
) -> RunOutput {
    let trace = &shared.trace;
    if let Err(e) = outcome {
        trace.record(
            "lab",
            None,
            Category::Proc,
            EventKind::SimError,
            format!("the simulation stopped: {e}"),
        );
    }
    let events = trace.events();
    let end_us = events.last().map_or(0, |e| e.at_us);
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

fn at(ms: u64) -> tokio::time::Instant {
    let elapsed = now();
    tokio::time::Instant::now() + Duration::from_millis(ms).saturating_sub(elapsed)
}

/// The server machine as the scenario describes it, with the command's arguments.
pub(crate) fn server_setup(scenario: &Scenario, command: &str) -> ServerSetup {
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
                    EventKind::Squatter,
                    format!("an older server is already running and listens on port {port}"),
                );
                squatters.push(tokio::task::spawn_local(serve_old_version(listener)));
            }
            Err(e) => trace.record(
                net.host(),
                None,
                Category::Proc,
                EventKind::Squatter,
                format!("another program could not take port {port}: {e}"),
            ),
        }
    }
    squatters
}

/// The program that already had the port: it answers every request, with the old code.
async fn serve_old_version(listener: crate::net::SimListener) {
    use server::net::Listener;
    while let Ok((stream, _)) = listener.accept().await {
        tokio::task::spawn_local(answer_as_old_version(stream));
    }
}

fn spawn_clients(net: &SimNet, plans: &[Plan], shared: &Shared) {
    for plan in plans {
        let world = SimClients {
            net: net.clone(),
            shared: shared.clone(),
        };
        let plan = plan.clone();
        tokio::task::spawn_local(async move {
            tokio::time::sleep_until(at(plan.start.as_millis() as u64)).await;
            let group = &plan.group;
            // A client on the server machine itself talks to it over loopback
            // (`curl localhost:8000`).
            let ip = if group.host == group.to {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                turmoil::lookup(group.to.as_str())
            };
            run_connection(&world, &plan, SocketAddr::new(ip, group.port)).await;
            world.shared.pending.fetch_sub(1, Ordering::SeqCst);
            world.shared.changed.notify_waiters();
        });
    }
}

/// The clients' view of the simulated world: its network, its virtual clock, the trace.
struct SimClients {
    net: SimNet,
    shared: Shared,
}

impl ClientWorld for SimClients {
    type Stream = SimStream;

    async fn connect(&self, addr: SocketAddr) -> io::Result<SimStream> {
        self.net.connect(addr).await
    }

    fn local_addr(stream: &SimStream) -> Option<SocketAddr> {
        stream.local_addr().ok()
    }

    fn now_us(&self) -> u64 {
        now().as_micros() as u64
    }

    fn say(&self, host: &str, conn: Option<&str>, kind: EventKind, text: String) {
        self.shared.trace.record_conn(
            host,
            None,
            Category::Client,
            conn.and_then(|c| c.parse().ok()),
            kind,
            text,
        );
    }

    fn requests(&self) -> &Mutex<Vec<RequestRecord>> {
        &self.shared.requests
    }
}

/// Sends the fault's signal to its target, as `kill -SIG pid` would.
fn apply_fault(fault: &Fault, shared: &Shared, trace: &Trace) {
    let signal = Signal::from_number(fault.signal.0);
    let short = fault.short_signal();
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
            EventKind::FaultMissed,
            fault.missed("the server has not started"),
        );
        return;
    };
    let master = machine
        .processes()
        .into_iter()
        .find(|(_, parent, _)| parent.is_none())
        .map(|(pid, _, _)| pid);
    if fault.to == FaultTarget::All {
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
            EventKind::Kill,
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
    // Only a worker is looked up in the log: the trace is copied for nothing else.
    let events = match fault.to {
        FaultTarget::Worker(_) => trace.events(),
        FaultTarget::Master | FaultTarget::All => Vec::new(),
    };
    let log = events
        .iter()
        .filter(|e| e.category == Category::Log && e.host == host)
        .map(|e| e.text.as_str());
    let target = fault.target_pid(master, log);
    let Some(pid) = target.filter(|pid| machine.is_alive(*pid)) else {
        trace.record(
            host,
            None,
            Category::Proc,
            EventKind::FaultMissed,
            fault.missed("no such process is running"),
        );
        return;
    };
    trace.record(
        host,
        Some(pid),
        Category::Proc,
        EventKind::Kill,
        fault.typed(pid),
    );
    let handled_by_master = fault.to == FaultTarget::Master
        && matches!(
            signal,
            Signal::Term | Signal::Int | Signal::Quit | Signal::Hup
        )
        && machine.signal_master(signal);
    if !handled_by_master {
        machine.kill(pid, signal);
    }
}
