//! The simulated TCP stack of every host on one network: listening sockets with their request
//! and accept queues, connections with their two byte pipes, the kernel timers, and the packets
//! of the handshake.
//!
//! Everything lives in one [`State`] behind one mutex (the world runs on turmoil's single
//! thread; the mutex only makes the handles `Send`). Work happens in two places, as in Linux:
//!
//! - **System calls** (`connect`, `write`, `shutdown`, `close`, `accept`) change the state and
//!   then process the packets they sent to the same host at once — Linux runs the loopback
//!   softirq before the system call returns, so a `connect()` to a listener with room completes
//!   its whole handshake inside the call.
//! - **The timer softirq**: [`drive`] runs the timers due at one instant, all of them, and only
//!   then processes the packets they produced, first in, first out. SYNs retransmitted by
//!   timers that share a wheel bucket therefore all reach the listener before any of the ACKs
//!   they provoke.
//!
//! Packets to another host arrive after the sender's `link_latency`, as a timer of their own.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;

use super::sysctls::{self, Sysctls};
use crate::trace::{now, Category, EventKind, Trace};

pub(crate) type ConnId = u64;
pub(crate) type ListenerId = u64;
type TimerKey = (Duration, u64);

// errno values, so that errors read as the kernel's ("Connection refused (os error 111)").
pub(crate) const EPIPE: i32 = 32;
pub(crate) const EACCES: i32 = 13;
pub(crate) const EINVAL: i32 = 22;
pub(crate) const EADDRINUSE: i32 = 98;
pub(crate) const EADDRNOTAVAIL: i32 = 99;
pub(crate) const ECONNRESET: i32 = 104;
pub(crate) const ENOTCONN: i32 = 107;
pub(crate) const ETIMEDOUT: i32 = 110;
pub(crate) const ECONNREFUSED: i32 = 111;

pub(crate) fn os_error(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

/// The two ends of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// The shared kernel of one simulated network.
pub(crate) struct Kernel {
    state: Mutex<State>,
    /// Wakes the [`drive`] tasks when a timer is armed.
    timers_changed: Notify,
}

struct Host {
    ip: Option<IpAddr>,
    sysctls: Sysctls,
    privileged: bool,
    next_port: u16,
}

struct Listen {
    host: String,
    addr: SocketAddr,
    /// As given to `listen()`, capped at `somaxconn`; the accept queue holds one more.
    backlog: u32,
    fd: i32,
    /// Established connections not yet accepted.
    queue: VecDeque<ConnId>,
    /// Half-open connections with a request socket (SYN_RECV): SYN-ACK sent, no usable ACK.
    requests: BTreeSet<ConnId>,
    /// Tasks blocked in `accept()`, longest-waiting first.
    waiters: VecDeque<(u64, Waker)>,
    /// Waiters woken for a connection that have not looked yet.
    woken: BTreeSet<u64>,
    next_waiter: u64,
    synflood_warned: bool,
    /// Left open across an `exec()` of its process (the descriptor without close-on-exec):
    /// dropping the old image's handles does not close it, and the new image's `bind()` of the
    /// same address takes it over, queue and all.
    kept_for_exec: bool,
    /// Open descriptors for it, in every process (a fork's copies share one handle): it
    /// closes when the last goes, as a socket does — including a killed worker's, dropped
    /// after its master may already have re-executed.
    handles: usize,
    /// `TCP_DEFER_ACCEPT` as the kernel keeps it: SYN-ACK timer expiries during which a bare
    /// ACK is dropped (the connection waits, half-open, for its first bytes). 0 = off.
    defer_accept: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientState {
    /// `connect()` waits for a SYN-ACK.
    SynSent,
    /// `connect()` returned: the client believes the connection is up.
    Established,
    /// `connect()` failed (refused, timed out) or was abandoned.
    Failed(i32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerState {
    /// No socket on the server for this connection (no SYN seen yet, or its request expired).
    Nothing,
    /// A request socket: SYN-ACK sent; `acked` once an ACK was dropped on a full accept queue.
    Request {
        acked: bool,
        num_timeout: u32,
        timer: Option<TimerKey>,
    },
    /// A SYN-ACK sent as a syncookie: no state kept; a valid ACK still completes it.
    Cookie { period: u64 },
    /// In the accept queue.
    Queued,
    /// Returned by `accept()`.
    Accepted,
    /// Closed or reset.
    Gone,
}

/// One direction of a connection.
#[derive(Default)]
struct Pipe {
    /// Written by the client while the server had no established socket: unacknowledged,
    /// retransmitted, delivered when a transmission finds the connection established.
    held: Vec<u8>,
    held_fin: bool,
    /// On the wire to another host: (arrival, bytes, FIN).
    flight: VecDeque<(Duration, Vec<u8>, bool)>,
    /// Delivered, not yet read.
    buf: VecDeque<u8>,
    /// The sender's FIN was delivered: EOF once `buf` is drained.
    fin: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Pipe {
    fn queued_bytes(&self) -> usize {
        self.held.len() + self.buf.len() + self.flight.iter().map(|f| f.1.len()).sum::<usize>()
    }

    fn unread(&self) -> usize {
        self.buf.len() + self.flight.iter().map(|f| f.1.len()).sum::<usize>()
    }
}

/// One end's socket.
#[derive(Default)]
struct End {
    /// A socket exists for this end (the client's from `connect()`, the server's from the
    /// moment it joins the accept queue).
    open: bool,
    /// FIN sent (or waiting to be).
    shut_wr: bool,
    /// A pending error, reported by the next read or write.
    err: Option<i32>,
    /// Reset: reads return EOF and writes EPIPE once the error was reported.
    dead: bool,
}

struct Conn {
    client_host: String,
    /// `None`: no host has that address; SYNs go nowhere.
    server_host: Option<String>,
    client: SocketAddr,
    server: SocketAddr,
    listener: Option<ListenerId>,
    started: Duration,
    client_state: ClientState,
    server_state: ServerState,
    syn_retransmits: u32,
    syn_timeout: Duration,
    syn_timer: Option<TimerKey>,
    connect_waker: Option<Waker>,
    /// Client → server.
    up: Pipe,
    /// Server → client.
    down: Pipe,
    client_end: End,
    server_end: End,
    /// Retransmissions of held data: (count so far, timer).
    rtx: Option<(u32, TimerKey)>,
    held_since: Duration,
}

impl Conn {
    fn end(&mut self, side: Side) -> &mut End {
        match side {
            Side::Client => &mut self.client_end,
            Side::Server => &mut self.server_end,
        }
    }

    /// The pipe `side` writes into.
    fn outgoing(&mut self, side: Side) -> &mut Pipe {
        match side {
            Side::Client => &mut self.up,
            Side::Server => &mut self.down,
        }
    }

    /// The pipe `side` reads from.
    fn incoming(&mut self, side: Side) -> &mut Pipe {
        match side {
            Side::Client => &mut self.down,
            Side::Server => &mut self.up,
        }
    }

    fn addr(&self, side: Side) -> SocketAddr {
        match side {
            Side::Client => self.client,
            Side::Server => self.server,
        }
    }

    fn host(&self, side: Side) -> Option<&str> {
        match side {
            Side::Client => Some(&self.client_host),
            Side::Server => self.server_host.as_deref(),
        }
    }

    /// The client's connection is up for it but not (yet) for the server.
    fn half_open(&self) -> bool {
        self.client_state == ClientState::Established
            && matches!(
                self.server_state,
                ServerState::Request { .. } | ServerState::Cookie { .. } | ServerState::Nothing
            )
    }
}

#[derive(Clone, Copy, Debug)]
enum Packet {
    Syn(ConnId),
    SynAck(ConnId),
    /// The client's ACK completing the handshake.
    Ack(ConnId),
    /// The client's held bytes (and FIN), which carry an ACK too.
    Data(ConnId),
    Rst(ConnId, Side),
}

enum Timer {
    SynRetransmit(ConnId),
    SynAckRetransmit(ConnId),
    DataRetransmit(ConnId),
    /// A packet reaches another host.
    Arrive(Packet),
    /// Bytes (or a FIN) reach the `Side` end on another host.
    Deliver(ConnId, Side),
}

pub(crate) struct State {
    trace: Trace,
    hosts: BTreeMap<String, Host>,
    listeners: BTreeMap<ListenerId, Listen>,
    conns: BTreeMap<ConnId, Conn>,
    timers: BTreeMap<TimerKey, Timer>,
    backlog: VecDeque<Packet>,
    next_id: u64,
    next_timer: u64,
    /// Hosts whose runtime runs a [`drive`] task.
    drivers: BTreeSet<String>,
    timers_changed: bool,
    /// Tasks to wake once the lock is released.
    wakers: Vec<Waker>,
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified()
}

impl Kernel {
    pub(crate) fn new(trace: Trace) -> Arc<Kernel> {
        Arc::new(Kernel {
            state: Mutex::new(State {
                trace,
                hosts: BTreeMap::new(),
                listeners: BTreeMap::new(),
                conns: BTreeMap::new(),
                timers: BTreeMap::new(),
                backlog: VecDeque::new(),
                next_id: 1,
                next_timer: 0,
                drivers: BTreeSet::new(),
                timers_changed: false,
                wakers: Vec::new(),
            }),
            timers_changed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state, then wakes whatever it woke, outside the lock.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let (out, wakers, changed) = {
            let mut state = self.lock();
            let out = f(&mut state);
            let changed = std::mem::take(&mut state.timers_changed);
            (out, std::mem::take(&mut state.wakers), changed)
        };
        if changed {
            self.timers_changed.notify_waiters();
        }
        for waker in wakers {
            waker.wake();
        }
        out
    }

    /// Makes sure a task on the runtime of the caller (`host`'s software) runs the kernel's
    /// timers.
    pub(crate) fn ensure_driver(self: &Arc<Kernel>, host: &str) {
        if tokio::runtime::Handle::try_current().is_err() || !turmoil::in_simulation() {
            return;
        }
        // On every read and write: no allocation once the driver runs.
        let start = {
            let mut state = self.lock();
            !state.drivers.contains(host) && state.drivers.insert(host.to_string())
        };
        if start {
            tokio::spawn(drive(self.clone(), host.to_string()));
        }
    }
}

/// The timer softirq: sleeps until the earliest kernel timer, runs every timer due at that
/// instant, then the packets they produced.
///
/// Every host that uses the network runs one, on its own runtime, over the one set of timers:
/// the first to wake at an instant (turmoil steps hosts in a fixed order) runs all that is
/// due. So if turmoil crashes a host, taking its tasks away, the others go on.
async fn drive(kernel: Arc<Kernel>, host: String) {
    struct Running(Arc<Kernel>, String);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.lock().drivers.remove(&self.1);
        }
    }
    let _running = Running(kernel.clone(), host);
    loop {
        let changed = kernel.timers_changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let next = kernel.lock().timers.keys().next().map(|key| key.0);
        let now = now();
        match next {
            Some(at) if at <= now => kernel.with(|state| state.run_timers(at)),
            Some(at) => {
                tokio::select! {
                    biased;
                    _ = &mut changed => {}
                    _ = tokio::time::sleep(at - now) => {}
                }
            }
            None => changed.await,
        }
    }
}

impl State {
    /// Records a network event of `host`; `client` names the connection it concerns (by its
    /// client's address, which is how the trace's readers match events to requests).
    fn record(&self, host: &str, client: Option<SocketAddr>, kind: EventKind, text: String) {
        // Sockets dropped while the world is torn down are not part of the run.
        if turmoil::sim_elapsed().is_some() {
            self.trace
                .record_conn(host, None, Category::Net, client, kind, text);
        }
    }

    fn wake(&mut self, waker: Option<Waker>) {
        if let Some(waker) = waker {
            self.wakers.push(waker);
        }
    }

    // ---- hosts ----

    pub(crate) fn add_host(&mut self, name: &str, sysctls: Sysctls, ip: Option<IpAddr>) {
        let next_port = sysctls.ip_local_port_range.0 & !1;
        let host = self.hosts.entry(name.to_string()).or_insert(Host {
            ip: None,
            sysctls: sysctls.clone(),
            privileged: false,
            next_port,
        });
        host.sysctls = sysctls;
        if ip.is_some() {
            host.ip = ip;
        }
    }

    pub(crate) fn set_privileged(&mut self, host: &str, privileged: bool) {
        if let Some(h) = self.hosts.get_mut(host) {
            h.privileged = privileged;
        }
    }

    pub(crate) fn sysctls(&self, host: &str) -> Sysctls {
        self.hosts
            .get(host)
            .map(|h| h.sysctls.clone())
            .unwrap_or_default()
    }

    /// The host's address on the network: turmoil's, looked up by name the first time.
    pub(crate) fn host_ip(&mut self, host: &str) -> IpAddr {
        if let Some(ip) = self.hosts.get(host).and_then(|h| h.ip) {
            return ip;
        }
        if !turmoil::in_simulation() {
            return IpAddr::V4(Ipv4Addr::LOCALHOST);
        }
        let ip = turmoil::lookup(host);
        if let Some(h) = self.hosts.get_mut(host) {
            h.ip = Some(ip);
        }
        ip
    }

    /// The host that answers on `ip`, seen from `from`.
    fn route(&mut self, from: &str, ip: IpAddr) -> Option<String> {
        if is_local(ip) {
            return Some(from.to_string());
        }
        let names: Vec<String> = self.hosts.keys().cloned().collect();
        names.into_iter().find(|name| self.host_ip(name) == ip)
    }

    fn owns(&mut self, host: &str, ip: IpAddr) -> bool {
        is_local(ip) || self.host_ip(host) == ip
    }

    // ---- timers and packets ----

    fn arm(&mut self, at: Duration, timer: Timer) -> TimerKey {
        self.next_timer += 1;
        let key = (at, self.next_timer);
        self.timers.insert(key, timer);
        self.timers_changed = true;
        key
    }

    fn cancel(&mut self, key: Option<TimerKey>) {
        if let Some(key) = key {
            self.timers.remove(&key);
        }
    }

    fn latency(&self, host: &str) -> Duration {
        self.hosts
            .get(host)
            .map_or(Duration::ZERO, |h| h.sysctls.link_latency)
    }

    /// Sends `packet` from `from` to `to`: the same host processes it in this softirq, another
    /// one after the link's latency; `None` (no such host) loses it.
    fn send(&mut self, packet: Packet, from: &str, to: Option<&str>) {
        match to {
            Some(to) if to == from => self.backlog.push_back(packet),
            Some(_) => {
                let at = now() + self.latency(from);
                self.arm(at, Timer::Arrive(packet));
            }
            None => {}
        }
    }

    fn send_to(&mut self, id: ConnId, packet: Packet, to: Side) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let from = conn.host(to.other()).map(str::to_string);
        let dest = conn.host(to).map(str::to_string);
        if let Some(from) = from {
            self.send(packet, &from, dest.as_deref());
        }
    }

    /// Processes queued packets, first in, first out, including those they provoke.
    pub(crate) fn drain(&mut self) {
        while let Some(packet) = self.backlog.pop_front() {
            match packet {
                Packet::Syn(id) => self.on_syn(id),
                Packet::SynAck(id) => self.on_synack(id),
                Packet::Ack(id) => self.on_ack(id, false),
                Packet::Data(id) => self.on_ack(id, true),
                Packet::Rst(id, to) => self.on_rst(id, to),
            }
        }
    }

    /// Runs every timer due at `at`, then the packets they sent.
    fn run_timers(&mut self, at: Duration) {
        let due: Vec<TimerKey> = self
            .timers
            .range((at, 0)..=(at, u64::MAX))
            .map(|(key, _)| *key)
            .collect();
        for key in due {
            if let Some(timer) = self.timers.remove(&key) {
                self.fire(key, timer);
            }
        }
        self.drain();
    }

    fn fire(&mut self, key: TimerKey, timer: Timer) {
        match timer {
            Timer::SynRetransmit(id) => self.on_syn_timer(id, key),
            Timer::SynAckRetransmit(id) => self.on_synack_timer(id, key),
            Timer::DataRetransmit(id) => self.on_data_timer(id, key),
            Timer::Arrive(packet) => self.backlog.push_back(packet),
            Timer::Deliver(id, side) => self.on_deliver(id, side),
        }
    }

    // ---- listening sockets ----

    pub(crate) fn bind(
        &mut self,
        host: &str,
        addr: SocketAddr,
        backlog: u32,
    ) -> io::Result<(ListenerId, SocketAddr, i32)> {
        let sys = self.sysctls(host);
        let privileged = self.hosts.get(host).is_some_and(|h| h.privileged);
        if !self.owns(host, addr.ip()) {
            return Err(os_error(EADDRNOTAVAIL));
        }
        if addr.port() != 0 && addr.port() < sys.ip_unprivileged_port_start && !privileged {
            return Err(os_error(EACCES));
        }
        let overlaps = |l: &Listen, port: u16| {
            l.host == host
                && l.addr.port() == port
                && l.addr.is_ipv4() == addr.is_ipv4()
                && (l.addr.ip().is_unspecified()
                    || addr.ip().is_unspecified()
                    || l.addr.ip() == addr.ip())
        };
        // A socket this process kept open across its exec(): the same one, never closed.
        if let Some((&id, l)) = self
            .listeners
            .iter_mut()
            .find(|(_, l)| l.host == host && l.kept_for_exec && l.addr == addr)
        {
            // The exec's hold on it becomes the new image's handle.
            l.kept_for_exec = false;
            l.backlog = sys.effective_backlog(backlog);
            let (fd, addr) = (l.fd, l.addr);
            self.record(
                host,
                None,
                EventKind::Listen,
                format!(
                    "fd {fd} ({addr}), kept open across exec(), is the new image's listening socket: the {} connection(s) that queued meanwhile are still there",
                    self.listeners[&id].queue.len()
                ),
            );
            return Ok((id, addr, fd));
        }
        let mut addr = addr;
        if addr.port() == 0 {
            // Linux gives bind() odd ports and keeps even ones for connect().
            let (low, high) = sys.ip_local_port_range;
            let port = (low..=high)
                .filter(|p| p % 2 == 1)
                .find(|&p| !self.listeners.values().any(|l| overlaps(l, p)))
                .ok_or_else(|| os_error(EADDRINUSE))?;
            addr.set_port(port);
        } else if self.listeners.values().any(|l| overlaps(l, addr.port())) {
            return Err(os_error(EADDRINUSE));
        }
        let backlog = sys.effective_backlog(backlog);
        let used: BTreeSet<i32> = self
            .listeners
            .values()
            .filter(|l| l.host == host)
            .map(|l| l.fd)
            .collect();
        let fd = (3..).find(|fd| !used.contains(fd)).unwrap_or(3);
        let id = self.next_id;
        self.next_id += 1;
        self.listeners.insert(
            id,
            Listen {
                host: host.to_string(),
                addr,
                backlog,
                fd,
                queue: VecDeque::new(),
                requests: BTreeSet::new(),
                waiters: VecDeque::new(),
                woken: BTreeSet::new(),
                next_waiter: 0,
                synflood_warned: false,
                kept_for_exec: false,
                handles: 1,
                defer_accept: 0,
            },
        );
        self.record(host, None,
            EventKind::Listen,
            format!(
                "fd {fd} listens on {addr} with backlog {backlog}: the accept queue holds up to {} connections",
                backlog + 1
            ),
        );
        Ok((id, addr, fd))
    }

    /// `setsockopt(TCP_DEFER_ACCEPT)`: Linux turns the seconds into SYN-ACK timer expiries
    /// whose timeouts (1 s, 2 s, 4 s, ...) add up to at least that (`secs_to_retrans`).
    pub(crate) fn set_defer_accept(&mut self, id: ListenerId, wait: Duration) {
        let secs = wait.as_secs();
        let mut expiries = 0;
        if secs > 0 {
            let mut waited = Duration::ZERO;
            while waited.as_secs() < secs && expiries < 255 {
                waited += sysctls::synack_timeout(expiries);
                expiries += 1;
            }
        }
        if let Some(l) = self.listeners.get_mut(&id) {
            l.defer_accept = expiries;
        }
    }

    pub(crate) fn queue_depth(&self, id: ListenerId) -> Option<(u32, u32)> {
        let l = self.listeners.get(&id)?;
        Some((l.queue.len() as u32, l.backlog))
    }

    /// The listener that answers a SYN for `dst` on `host`: an exact address first, then a
    /// wildcard one.
    fn find_listener(&self, host: &str, dst: SocketAddr) -> Option<ListenerId> {
        let on_port = || {
            self.listeners.iter().filter(move |(_, l)| {
                l.host == host && l.addr.port() == dst.port() && l.addr.is_ipv4() == dst.is_ipv4()
            })
        };
        on_port()
            .find(|(_, l)| l.addr.ip() == dst.ip())
            .or_else(|| on_port().find(|(_, l)| l.addr.ip().is_unspecified()))
            .map(|(id, _)| *id)
    }

    /// The last handle on a listening socket is gone: the kernel closes it. Connections in its
    /// accept queue are reset; half-open ones are forgotten.
    /// Marks `host`'s listener on `addr` as kept open across an exec(); false if there is none.
    pub(crate) fn keep_for_exec(&mut self, host: &str, addr: SocketAddr) -> bool {
        match self
            .listeners
            .values_mut()
            .find(|l| l.host == host && l.addr == addr)
        {
            Some(l) => {
                if !l.kept_for_exec {
                    l.kept_for_exec = true;
                    l.handles += 1;
                }
                true
            }
            None => false,
        }
    }

    /// One handle on listener `id` is dropped; the socket closes with the last.
    pub(crate) fn close_listener(&mut self, id: ListenerId) {
        if let Some(l) = self.listeners.get_mut(&id) {
            l.handles = l.handles.saturating_sub(1);
            if l.handles > 0 {
                return;
            }
        }
        let Some(l) = self.listeners.remove(&id) else {
            return;
        };
        self.record(
            &l.host,
            None,
            EventKind::Close,
            format!(
                "fd {} ({}) closed: {} queued connection(s) reset, {} half-open forgotten",
                l.fd,
                l.addr,
                l.queue.len(),
                l.requests.len()
            ),
        );
        for conn_id in &l.requests {
            if let Some(conn) = self.conns.get_mut(conn_id) {
                if let ServerState::Request { timer, .. } = conn.server_state {
                    conn.server_state = ServerState::Nothing;
                    self.cancel(timer);
                }
            }
        }
        for conn_id in l.queue.iter().copied() {
            let Some(conn) = self.conns.get_mut(&conn_id) else {
                continue;
            };
            conn.server_state = ServerState::Gone;
            conn.server_end.open = false;
            conn.server_end.dead = true;
            let (client, host) = (conn.client, conn.server_host.clone().unwrap_or_default());
            self.record(
                &host,
                Some(client),
                EventKind::Reset,
                format!("RST to {client}: its connection was still in the accept queue"),
            );
            self.send_to(conn_id, Packet::Rst(conn_id, Side::Client), Side::Client);
        }
        for conn in self.conns.values_mut() {
            if conn.listener == Some(id) {
                conn.listener = None;
            }
        }
        self.drain();
        self.gc();
    }

    /// One step of `accept()`: the oldest queued connection, or a registration to be woken.
    pub(crate) fn poll_accept(
        &mut self,
        id: ListenerId,
        waiter: &mut Option<u64>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(ConnId, SocketAddr, SocketAddr)>> {
        let Some(l) = self.listeners.get_mut(&id) else {
            return Poll::Ready(Err(os_error(EINVAL)));
        };
        let was_woken = waiter.is_some_and(|w| l.woken.remove(&w));
        if let Some(conn_id) = l.queue.pop_front() {
            if let Some(w) = waiter.take() {
                l.waiters.retain(|(id, _)| *id != w);
            }
            let (addr, fd, left, max) = (l.addr, l.fd, l.queue.len(), l.backlog + 1);
            let host = l.host.clone();
            let conn = self.conns.get_mut(&conn_id).expect("queued connection");
            conn.server_state = ServerState::Accepted;
            let (client, local) = (conn.client, conn.server);
            self.record(
                &host,
                Some(client),
                EventKind::Accepted,
                format!(
                    "accept() on fd {fd} ({addr}) takes {client}; {left}/{max} left in the queue"
                ),
            );
            return Poll::Ready(Ok((conn_id, client, local)));
        }
        let w = *waiter.get_or_insert_with(|| {
            l.next_waiter += 1;
            l.next_waiter
        });
        if let Some(slot) = l.waiters.iter_mut().find(|(id, _)| *id == w) {
            slot.1 = cx.waker().clone();
        } else if was_woken {
            // Another task took the connection it was woken for: it keeps its place.
            l.waiters.push_front((w, cx.waker().clone()));
        } else {
            l.waiters.push_back((w, cx.waker().clone()));
        }
        Poll::Pending
    }

    /// An `accept()` future went away: if it had been woken for a connection still queued,
    /// the next waiter gets the wake-up.
    pub(crate) fn drop_accept(&mut self, id: ListenerId, waiter: u64) {
        let Some(l) = self.listeners.get_mut(&id) else {
            return;
        };
        l.waiters.retain(|(w, _)| *w != waiter);
        if l.woken.remove(&waiter) && !l.queue.is_empty() {
            self.wake_acceptor(id);
        }
    }

    fn wake_acceptor(&mut self, id: ListenerId) {
        let Some(l) = self.listeners.get_mut(&id) else {
            return;
        };
        if let Some((w, waker)) = l.waiters.pop_front() {
            l.woken.insert(w);
            self.wakers.push(waker);
        }
    }

    // ---- connecting ----

    /// `connect()`'s system call: a new connection in SYN_SENT, its SYN sent and processed.
    pub(crate) fn connect(&mut self, host: &str, dst: SocketAddr) -> ConnId {
        let server_host = self.route(host, dst.ip());
        let dst = if dst.ip().is_unspecified() {
            // Linux connects to 0.0.0.0 as to the loopback address.
            SocketAddr::new(
                if dst.is_ipv4() {
                    IpAddr::V4(Ipv4Addr::LOCALHOST)
                } else {
                    IpAddr::V6(Ipv6Addr::LOCALHOST)
                },
                dst.port(),
            )
        } else {
            dst
        };
        let src_ip = if dst.ip().is_loopback() {
            dst.ip()
        } else {
            self.host_ip(host)
        };
        let port = self.ephemeral_port(host, src_ip);
        let id = self.next_id;
        self.next_id += 1;
        let started = now();
        let client = SocketAddr::new(src_ip, port);
        self.conns.insert(
            id,
            Conn {
                client_host: host.to_string(),
                server_host,
                client,
                server: dst,
                listener: None,
                started,
                client_state: ClientState::SynSent,
                server_state: ServerState::Nothing,
                syn_retransmits: 0,
                syn_timeout: Duration::ZERO,
                syn_timer: None,
                connect_waker: None,
                up: Pipe::default(),
                down: Pipe::default(),
                client_end: End {
                    open: true,
                    ..End::default()
                },
                server_end: End::default(),
                rtx: None,
                held_since: Duration::ZERO,
            },
        );
        self.record(
            host,
            Some(client),
            EventKind::SynSent,
            format!("{client} sends SYN to {dst}"),
        );
        let sys = self.sysctls(host);
        let timeout = sys.next_syn_timeout(0, Duration::ZERO);
        let key = self.arm(sys.timer_expiry(started, timeout), Timer::SynRetransmit(id));
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.syn_timeout = timeout;
            conn.syn_timer = Some(key);
        }
        self.send_to(id, Packet::Syn(id), Side::Server);
        self.drain();
        id
    }

    fn ephemeral_port(&mut self, host: &str, ip: IpAddr) -> u16 {
        let sys = self.sysctls(host);
        let (low, high) = sys.ip_local_port_range;
        let span = u32::from(high.saturating_sub(low)) / 2 + 1;
        let used: BTreeSet<u16> = self
            .conns
            .values()
            .filter(|c| c.client_host == host && c.client.ip() == ip)
            .map(|c| c.client.port())
            .collect();
        let Some(h) = self.hosts.get_mut(host) else {
            return low;
        };
        for _ in 0..span {
            let port = h.next_port;
            h.next_port = if port + 2 > high { low & !1 } else { port + 2 };
            if port >= low && !used.contains(&port) {
                return port;
            }
        }
        low
    }

    /// Where `connect()` stands: `Ready` once the SYN-ACK came or the attempt failed.
    pub(crate) fn poll_connect(
        &mut self,
        id: ConnId,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(SocketAddr, SocketAddr)>> {
        let Some(conn) = self.conns.get_mut(&id) else {
            return Poll::Ready(Err(os_error(ECONNREFUSED)));
        };
        match conn.client_state {
            ClientState::SynSent => {
                conn.connect_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            ClientState::Established => Poll::Ready(Ok((conn.client, conn.server))),
            ClientState::Failed(errno) => {
                conn.client_end.open = false;
                self.gc();
                Poll::Ready(Err(os_error(errno)))
            }
        }
    }

    /// A `connect()` abandoned before it finished: the socket is closed.
    pub(crate) fn abandon_connect(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.client_end.open = false;
        if conn.client_state == ClientState::SynSent {
            conn.client_state = ClientState::Failed(ECONNREFUSED);
            let timer = conn.syn_timer.take();
            self.cancel(timer);
        }
        self.gc();
    }

    fn on_syn_timer(&mut self, id: ConnId, key: TimerKey) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.syn_timer != Some(key) || conn.client_state != ClientState::SynSent {
            return;
        }
        conn.syn_timer = None;
        let host = conn.client_host.clone();
        let sys = self.sysctls(&host);
        let conn = self.conns.get_mut(&id).expect("connection");
        let (client, server, started) = (conn.client, conn.server, conn.started);
        if conn.syn_retransmits >= sys.max_syn_retransmits() {
            conn.client_state = ClientState::Failed(ETIMEDOUT);
            let waker = conn.connect_waker.take();
            let n = conn.syn_retransmits;
            self.wake(waker);
            self.record(&host, Some(client),
                EventKind::Timeout,
                format!(
                    "{client} gives up on {server} after {n} SYN retransmissions: connect() fails with ETIMEDOUT after {}",
                    secs(now() - started)
                ),
            );
            return;
        }
        conn.syn_retransmits += 1;
        let n = conn.syn_retransmits;
        let timeout = sys.next_syn_timeout(n, conn.syn_timeout);
        conn.syn_timeout = timeout;
        self.record(&host, Some(client),
            EventKind::SynRetry,
            format!(
                "{client} retransmits its SYN to {server} (attempt {}, {} after connect()); next try in {}",
                n + 1,
                secs(now() - started),
                secs(timeout)
            ),
        );
        let key = self.arm(sys.timer_expiry(now(), timeout), Timer::SynRetransmit(id));
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.syn_timer = Some(key);
        }
        self.send_to(id, Packet::Syn(id), Side::Server);
    }

    fn on_syn(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let (client, dst) = (conn.client, conn.server);
        let Some(host) = conn.server_host.clone() else {
            return;
        };
        match conn.server_state {
            ServerState::Request { .. } | ServerState::Cookie { .. } => {
                // A retransmitted SYN for a connection the server already answered.
                self.record(
                    &host,
                    Some(client),
                    EventKind::Synack,
                    format!("SYN-ACK to {client} again"),
                );
                self.send_to(id, Packet::SynAck(id), Side::Client);
                return;
            }
            ServerState::Queued | ServerState::Accepted | ServerState::Gone => return,
            ServerState::Nothing => {}
        }
        let Some(lid) = self.find_listener(&host, dst) else {
            self.record(
                &host,
                Some(client),
                EventKind::Refused,
                format!("nothing listens on {dst}: RST to {client}"),
            );
            self.send_to(id, Packet::Rst(id, Side::Client), Side::Client);
            return;
        };
        let sys = self.sysctls(&host);
        let l = self.listeners.get(&lid).expect("listener");
        let (max, accepted_max) = (l.backlog as usize, l.backlog as usize + 1);
        let (queued, requests) = (l.queue.len(), l.requests.len());
        let laddr = l.addr;
        let mut cookie = false;
        if sys.tcp_syncookies == 2 || requests >= max {
            if sys.tcp_syncookies == 0 {
                self.record(&host, Some(client),
                    EventKind::SynDropped,
                    format!(
                        "SYN from {client} dropped: {requests} half-open connections already wait on {laddr} (backlog {max}) and syncookies are off"
                    ),
                );
                return;
            }
            cookie = true;
            let l = self.listeners.get_mut(&lid).expect("listener");
            if !std::mem::replace(&mut l.synflood_warned, true) && sys.tcp_syncookies != 2 {
                self.record(&host, None,
                    EventKind::SynFlood,
                    format!("TCP: request_sock_TCP: Possible SYN flooding on port {laddr}. Sending cookies."),
                );
            }
        }
        if queued > max {
            self.record(&host, Some(client),
                EventKind::SynDropped,
                format!(
                    "SYN from {client} dropped: the accept queue of {laddr} is full ({queued}/{accepted_max}); the client will retransmit"
                ),
            );
            return;
        }
        let state = if cookie {
            ServerState::Cookie {
                period: syncookie_period(now()),
            }
        } else {
            let key = self.arm(
                sys.timer_expiry(now(), sysctls::synack_timeout(0)),
                Timer::SynAckRetransmit(id),
            );
            self.listeners
                .get_mut(&lid)
                .expect("listener")
                .requests
                .insert(id);
            ServerState::Request {
                acked: false,
                num_timeout: 0,
                timer: Some(key),
            }
        };
        let conn = self.conns.get_mut(&id).expect("connection");
        conn.listener = Some(lid);
        conn.server_state = state;
        self.record(&host, Some(client),
            EventKind::Synack,
            if cookie {
                format!("SYN-ACK (a syncookie, no state kept) to {client}; accept queue {queued}/{accepted_max}")
            } else {
                format!("SYN-ACK to {client}; accept queue {queued}/{accepted_max}")
            },
        );
        self.send_to(id, Packet::SynAck(id), Side::Client);
    }

    fn on_synack(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if !conn.client_end.open || matches!(conn.client_state, ClientState::Failed(_)) {
            // Nobody waits for it any more: the client's kernel answers RST.
            self.send_to(id, Packet::Rst(id, Side::Server), Side::Server);
            return;
        }
        if conn.client_state == ClientState::SynSent {
            conn.client_state = ClientState::Established;
            let timer = conn.syn_timer.take();
            let waker = conn.connect_waker.take();
            let (host, client, server, started) = (
                conn.client_host.clone(),
                conn.client,
                conn.server,
                conn.started,
            );
            self.cancel(timer);
            self.wake(waker);
            self.record(
                &host,
                Some(client),
                EventKind::Connected,
                format!(
                    "{client} gets the SYN-ACK of {server}: connect() returns after {}",
                    secs(now() - started)
                ),
            );
        }
        self.send_to(id, Packet::Ack(id), Side::Server);
    }

    /// An ACK — bare, or carried by the client's held bytes — reaches the server.
    fn on_ack(&mut self, id: ConnId, data: bool) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let Some(host) = conn.server_host.clone() else {
            return;
        };
        let (client, server) = (conn.client, conn.server);
        let listener = conn.listener.filter(|l| self.listeners.contains_key(l));
        match conn.server_state {
            ServerState::Queued | ServerState::Accepted => {
                if data {
                    self.deliver_held(id, true);
                }
                return;
            }
            ServerState::Gone => {
                self.send_to(id, Packet::Rst(id, Side::Client), Side::Client);
                return;
            }
            ServerState::Cookie { period }
                if listener.is_some() && syncookie_period(now()) <= period + 1 => {}
            ServerState::Request { .. } if listener.is_some() => {}
            _ => {
                self.record(&host, Some(client),
                    EventKind::Reset,
                    format!(
                        "{server} no longer knows {client} (the half-open connection expired, or its listener closed): RST"
                    ),
                );
                self.forget_request(id);
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.server_state = ServerState::Gone;
                }
                self.send_to(id, Packet::Rst(id, Side::Client), Side::Client);
                return;
            }
        }
        let lid = listener.expect("listener");
        let sys = self.sysctls(&host);
        // TCP_DEFER_ACCEPT: a bare ACK leaves the connection half-open until its first bytes
        // arrive (or the deferring period ends), and the client, connected as far as it
        // knows, sends them held and unacknowledged meanwhile.
        let defer_accept = self.listeners[&lid].defer_accept;
        let conn = self.conns.get_mut(&id).expect("connection");
        let deferring = matches!(conn.server_state,
            ServerState::Request { num_timeout, .. } if num_timeout < defer_accept);
        if deferring && !data {
            if let ServerState::Request { acked, .. } = &mut conn.server_state {
                *acked = true;
            }
            return;
        }
        let first_bytes_of_deferred = deferring && conn.rtx.is_some_and(|(count, _)| count == 0);
        let l = self.listeners.get_mut(&lid).expect("listener");
        let (queued, max) = (l.queue.len(), l.backlog as usize);
        let laddr = l.addr;
        let what = if data { "ACK (with its data)" } else { "ACK" };
        if queued > max {
            if sys.tcp_abort_on_overflow {
                self.record(&host, Some(client),
                    EventKind::Reset,
                    format!(
                        "{what} from {client} finds the accept queue of {laddr} full ({queued}/{}): tcp_abort_on_overflow answers RST",
                        max + 1
                    ),
                );
                self.forget_request(id);
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.server_state = ServerState::Gone;
                }
                self.send_to(id, Packet::Rst(id, Side::Client), Side::Client);
            } else {
                if let Some(conn) = self.conns.get_mut(&id) {
                    if let ServerState::Request { acked, .. } = &mut conn.server_state {
                        *acked = true;
                    }
                }
                self.record(&host, Some(client),
                    EventKind::AckDropped,
                    format!(
                        "{what} from {client} dropped: the accept queue of {laddr} is full ({queued}/{}); the connection stays half-open while the client believes it is connected",
                        max + 1
                    ),
                );
            }
            return;
        }
        self.forget_request(id);
        let l = self.listeners.get_mut(&lid).expect("listener");
        l.queue.push_back(id);
        let queued = l.queue.len();
        let conn = self.conns.get_mut(&id).expect("connection");
        conn.server_state = ServerState::Queued;
        conn.server_end.open = true;
        self.record(&host, Some(client),
            EventKind::Established,
            format!(
                "{what} from {client}: the connection is established and joins the accept queue of {laddr} ({queued}/{})",
                max + 1
            ),
        );
        self.wake_acceptor(lid);
        if data {
            self.deliver_held(id, !first_bytes_of_deferred);
        }
    }

    /// Removes the request socket of `id`, if it has one.
    fn forget_request(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if let ServerState::Request { timer, .. } = conn.server_state {
            conn.server_state = ServerState::Nothing;
            let listener = conn.listener;
            self.cancel(timer);
            if let Some(l) = listener.and_then(|l| self.listeners.get_mut(&l)) {
                l.requests.remove(&id);
            }
        }
    }

    fn on_synack_timer(&mut self, id: ConnId, key: TimerKey) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let ServerState::Request {
            acked,
            num_timeout,
            timer,
        } = conn.server_state
        else {
            return;
        };
        if timer != Some(key) {
            return;
        }
        let (client, host) = (conn.client, conn.server_host.clone().unwrap_or_default());
        let Some((backlog, requests, defer_accept)) =
            conn.listener.and_then(|l| self.listeners.get(&l)).map(|l| {
                (
                    l.backlog as usize,
                    l.requests.iter().copied().collect::<Vec<_>>(),
                    l.defer_accept,
                )
            })
        else {
            self.forget_request(id);
            return;
        };
        let sys = self.sysctls(&host);
        // reqsk_timer_handler: when half-open connections fill half the queue, old ones get
        // fewer retries, to leave room for young ones.
        let mut max_retries = sys.tcp_synack_retries;
        let qlen = requests.len();
        if (qlen << 1) > backlog.max(8) {
            let mut young = requests
                .iter()
                .filter(|r| {
                    self.conns.get(r).is_some_and(|c| {
                        matches!(c.server_state, ServerState::Request { num_timeout: 0, .. })
                    })
                })
                .count()
                << 1;
            while max_retries > 2 {
                if qlen < young {
                    break;
                }
                max_retries -= 1;
                young <<= 1;
            }
        }
        // syn_ack_recalc: a connection acknowledged while its accept was deferred outlives
        // the retries until the deferring period is over, and gets no SYN-ACK before its last
        // expiry (then one, so that the client's ACK can establish it).
        let deferring = defer_accept > 0 && acked;
        let expire = num_timeout >= max_retries && (!deferring || num_timeout >= defer_accept);
        let resend = !deferring || num_timeout + 1 >= defer_accept;
        if expire {
            self.record(&host, Some(client),
                EventKind::HalfOpenExpired,
                format!(
                    "half-open connection from {client} forgotten after {num_timeout} SYN-ACK retransmissions{}; the client is not told",
                    if acked { " (its ACK had been dropped)" } else { "" }
                ),
            );
            self.forget_request(id);
            return;
        }
        if resend {
            let silent = self.conns.get(&id).is_some_and(|c| c.up.held.is_empty());
            self.record(
                &host,
                Some(client),
                EventKind::SynackRetransmit,
                format!(
                    "SYN-ACK retransmission {} to half-open {client}{}",
                    num_timeout + 1,
                    match (acked, deferring && silent) {
                        (true, true) => " (it has sent no request since its ACK, which TCP_DEFER_ACCEPT kept out of the accept queue: its next ACK gets it in)",
                        (true, false) => " (its ACK was dropped on a full accept queue)",
                        (false, _) => "",
                    }
                ),
            );
        }
        let next = self.arm(
            sys.timer_expiry(now(), sysctls::synack_timeout(num_timeout + 1)),
            Timer::SynAckRetransmit(id),
        );
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.server_state = ServerState::Request {
                acked,
                num_timeout: num_timeout + 1,
                timer: Some(next),
            };
        }
        if resend {
            self.send_to(id, Packet::SynAck(id), Side::Client);
        }
    }

    fn on_rst(&mut self, id: ConnId, to: Side) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        match to {
            Side::Client => match conn.client_state {
                ClientState::SynSent => {
                    conn.client_state = ClientState::Failed(ECONNREFUSED);
                    let timer = conn.syn_timer.take();
                    let waker = conn.connect_waker.take();
                    let (host, client, server) =
                        (conn.client_host.clone(), conn.client, conn.server);
                    self.cancel(timer);
                    self.wake(waker);
                    self.record(&host, Some(client),
                        EventKind::Refused,
                        format!("{client} receives RST from {server}: connect() fails with ECONNREFUSED"),
                    );
                }
                ClientState::Established => self.reset_end(id, Side::Client),
                ClientState::Failed(_) => {}
            },
            Side::Server => match conn.server_state {
                ServerState::Request { .. } => {
                    self.forget_request(id);
                    if let Some(conn) = self.conns.get_mut(&id) {
                        conn.server_state = ServerState::Gone;
                    }
                }
                ServerState::Cookie { .. } | ServerState::Nothing => {
                    conn.server_state = ServerState::Gone;
                }
                // A queued connection stays queued: accept() returns it, reads fail.
                ServerState::Queued | ServerState::Accepted => self.reset_end(id, Side::Server),
                ServerState::Gone => {}
            },
        }
        self.gc();
    }

    /// `side` receives a RST: its next read or write reports ECONNRESET (EPIPE if it had
    /// already received the peer's FIN); what it had received stays readable.
    fn reset_end(&mut self, id: ConnId, side: Side) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.end(side).dead {
            return;
        }
        let fin_received = conn.incoming(side).fin;
        let end = conn.end(side);
        end.dead = true;
        end.err = Some(if fin_received { EPIPE } else { ECONNRESET });
        let out = conn.outgoing(side);
        out.held.clear();
        out.held_fin = false;
        out.flight.clear();
        let wakers = [
            out.writer.take(),
            conn.incoming(side).reader.take(),
            conn.incoming(side).writer.take(),
        ];
        let rtx = if side == Side::Client {
            conn.rtx.take().map(|r| r.1)
        } else {
            None
        };
        let (host, me, peer) = (
            conn.host(side).unwrap_or_default().to_string(),
            conn.addr(side),
            conn.addr(side.other()),
        );
        self.cancel(rtx);
        for waker in wakers {
            self.wake(waker);
        }
        self.record(
            &host,
            Some(if side == Side::Client { me } else { peer }),
            EventKind::Reset,
            format!(
                "{me} receives RST from {peer}: its next read or write fails with {}",
                if fin_received { "EPIPE" } else { "ECONNRESET" }
            ),
        );
    }

    // ---- data ----

    /// `write()` on one end.
    pub(crate) fn poll_write(
        &mut self,
        id: ConnId,
        side: Side,
        data: &[u8],
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let Some(conn) = self.conns.get_mut(&id) else {
            return Poll::Ready(Err(os_error(ENOTCONN)));
        };
        let end = conn.end(side);
        if let Some(errno) = end.err.take() {
            return Poll::Ready(Err(os_error(errno)));
        }
        if end.dead || end.shut_wr {
            return Poll::Ready(Err(os_error(EPIPE)));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let host = conn.host(side).unwrap_or_default().to_string();
        // A peer that has closed acknowledges nothing: only the initial send buffer's worth
        // goes out before the writer must wait — for the RST that fails its next write.
        let peer_gone = !conn.end(side.other()).open;
        let capacity = if peer_gone {
            super::sysctls::INITIAL_SEND_BUFFER.min(self.sysctls(&host).stream_buffer)
        } else {
            self.sysctls(&host).stream_buffer
        };
        let conn = self.conns.get_mut(&id).expect("connection");
        let out = conn.outgoing(side);
        let room = capacity.saturating_sub(out.queued_bytes());
        if room == 0 {
            out.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(data.len());
        if side == Side::Client && (conn.half_open() || !conn.up.held.is_empty()) {
            // The server has no established socket: the bytes wait, unacknowledged, and each
            // transmission of them is another try at completing the handshake.
            if conn.up.held.is_empty() && !conn.up.held_fin {
                conn.held_since = now();
            }
            conn.up.held.extend_from_slice(&data[..n]);
            self.transmit_held(id);
            self.drain();
            return Poll::Ready(Ok(n));
        }
        let peer_closed = !conn.end(side.other()).open;
        // The peer's socket is gone: its kernel answers these bytes with RST. On the same host
        // that happens inside this write; across hosts the bytes travel first and the RST
        // comes back a round trip later (see `on_deliver`), after whatever the peer sent
        // before it closed — a response in flight is still read.
        if peer_closed && conn.host(side) == conn.host(side.other()) {
            let (me, peer) = (conn.addr(side), conn.addr(side.other()));
            self.record(
                &host,
                Some(if side == Side::Client { me } else { peer }),
                EventKind::Reset,
                format!("{peer} is closed: {n} bytes from {me} are answered with RST"),
            );
            self.reset_end(id, side);
            return Poll::Ready(Ok(n));
        }
        self.push_bytes(id, side, data[..n].to_vec(), false);
        Poll::Ready(Ok(n))
    }

    /// Sends bytes (or a FIN) from `side` to the other end: on the same host they are readable
    /// at once, to another host after the link's latency.
    fn push_bytes(&mut self, id: ConnId, side: Side, bytes: Vec<u8>, fin: bool) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let from = conn.host(side).map(str::to_string);
        let to = conn.host(side.other()).map(str::to_string);
        if from == to {
            let pipe = conn.outgoing(side);
            pipe.buf.extend(bytes);
            pipe.fin |= fin;
            let waker = pipe.reader.take();
            self.wake(waker);
        } else {
            let at = now() + from.as_deref().map_or(Duration::ZERO, |h| self.latency(h));
            let conn = self.conns.get_mut(&id).expect("connection");
            conn.outgoing(side).flight.push_back((at, bytes, fin));
            self.arm(at, Timer::Deliver(id, side.other()));
        }
    }

    fn on_deliver(&mut self, id: ConnId, to: Side) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let t = now();
        let receiver_open = conn.end(to).open;
        let pipe = conn.incoming(to);
        let mut got_data = false;
        while pipe.flight.front().is_some_and(|f| f.0 <= t) {
            let (_, bytes, fin) = pipe.flight.pop_front().expect("flight");
            got_data |= !bytes.is_empty();
            pipe.buf.extend(bytes);
            pipe.fin |= fin;
        }
        let waker = pipe.reader.take();
        let (host, me, sender) = (
            conn.host(to).unwrap_or_default().to_string(),
            conn.addr(to),
            conn.addr(to.other()),
        );
        self.wake(waker);
        if got_data && !receiver_open {
            self.record(
                &host,
                Some(if to == Side::Client { me } else { sender }),
                EventKind::Reset,
                format!("{me} is closed: the bytes {sender} sent are answered with RST"),
            );
            self.send_to(id, Packet::Rst(id, to.other()), to.other());
        }
    }

    /// Sends the client's held bytes once more and makes sure a retransmission follows.
    fn transmit_held(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let rtx_armed = conn.rtx.is_some();
        let host = conn.client_host.clone();
        self.send_to(id, Packet::Data(id), Side::Server);
        if !rtx_armed {
            let sys = self.sysctls(&host);
            let key = self.arm(
                sys.timer_expiry(now(), sysctls::data_retransmit_timeout(0)),
                Timer::DataRetransmit(id),
            );
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.rtx = Some((0, key));
            }
        }
    }

    fn on_data_timer(&mut self, id: ConnId, key: TimerKey) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let Some((count, timer)) = conn.rtx else {
            return;
        };
        if timer != key {
            return;
        }
        conn.rtx = None;
        if (conn.up.held.is_empty() && !conn.up.held_fin) || conn.client_end.dead {
            return;
        }
        let host = conn.client_host.clone();
        let (client, server, held, since) = (
            conn.client,
            conn.server,
            conn.up.held.len(),
            conn.held_since,
        );
        let sys = self.sysctls(&host);
        if count >= sys.tcp_retries2 {
            let conn = self.conns.get_mut(&id).expect("connection");
            conn.client_end.err = Some(ETIMEDOUT);
            conn.client_end.dead = true;
            let wakers = [conn.down.reader.take(), conn.up.writer.take()];
            for waker in wakers {
                self.wake(waker);
            }
            self.record(
                &host,
                Some(client),
                EventKind::Timeout,
                format!("{client} gives up retransmitting {held} bytes to {server}: ETIMEDOUT"),
            );
            return;
        }
        self.record(&host, Some(client),
            EventKind::DataRetransmit,
            format!(
                "{client} retransmits {held} unacknowledged bytes to {server} (try {}, {} after they were written)",
                count + 1,
                secs(now() - since)
            ),
        );
        let next = self.arm(
            sys.timer_expiry(now(), sysctls::data_retransmit_timeout(count + 1)),
            Timer::DataRetransmit(id),
        );
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.rtx = Some((count + 1, next));
        }
        self.send_to(id, Packet::Data(id), Side::Server);
    }

    /// The server end is established and the client's held bytes got through. `waited`: they
    /// were held for more than their trip (a deferred connection's first bytes, which are what
    /// establishes it, were not), and the trace says so.
    fn deliver_held(&mut self, id: ConnId, waited: bool) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.up.held.is_empty() && !conn.up.held_fin {
            return;
        }
        let bytes = std::mem::take(&mut conn.up.held);
        let fin = std::mem::take(&mut conn.up.held_fin);
        let rtx = conn.rtx.take().map(|r| r.1);
        let (host, client, since) = (
            conn.server_host.clone().unwrap_or_default(),
            conn.client,
            conn.held_since,
        );
        let n = bytes.len();
        conn.up.buf.extend(bytes);
        conn.up.fin |= fin;
        let wakers = [conn.up.reader.take(), conn.up.writer.take()];
        self.cancel(rtx);
        for waker in wakers {
            self.wake(waker);
        }
        if waited && now() > since {
            self.record(
                &host,
                Some(client),
                EventKind::DataDelivered,
                format!(
                    "{n} bytes{} from {client}, unacknowledged for {}, reach the server",
                    if fin { " and its FIN" } else { "" },
                    secs(now() - since)
                ),
            );
        }
    }

    /// `read()` on one end.
    pub(crate) fn poll_read(
        &mut self,
        id: ConnId,
        side: Side,
        out: &mut tokio::io::ReadBuf<'_>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(conn) = self.conns.get_mut(&id) else {
            return Poll::Ready(Ok(()));
        };
        let pipe = conn.incoming(side);
        if !pipe.buf.is_empty() {
            let n = pipe.buf.len().min(out.remaining());
            let (a, b) = pipe.buf.as_slices();
            let from_a = n.min(a.len());
            out.put_slice(&a[..from_a]);
            out.put_slice(&b[..n - from_a]);
            pipe.buf.drain(..n);
            let waker = pipe.writer.take();
            self.wake(waker);
            return Poll::Ready(Ok(()));
        }
        let fin = pipe.fin;
        let end = conn.end(side);
        if let Some(errno) = end.err.take() {
            return Poll::Ready(Err(os_error(errno)));
        }
        if fin || end.dead {
            return Poll::Ready(Ok(()));
        }
        conn.incoming(side).reader = Some(cx.waker().clone());
        Poll::Pending
    }

    /// `shutdown(SHUT_WR)`: a FIN after the bytes already written.
    pub(crate) fn shutdown(&mut self, id: ConnId, side: Side) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(&id) else {
            return Err(os_error(ENOTCONN));
        };
        let end = conn.end(side);
        if end.dead {
            return Err(os_error(ENOTCONN));
        }
        if std::mem::replace(&mut end.shut_wr, true) {
            return Ok(());
        }
        let (host, me, peer) = (
            conn.host(side).unwrap_or_default().to_string(),
            conn.addr(side),
            conn.addr(side.other()),
        );
        self.record(
            &host,
            Some(if side == Side::Client { me } else { peer }),
            EventKind::Fin,
            format!("{me} sends FIN to {peer}"),
        );
        let conn = self.conns.get_mut(&id).expect("connection");
        if side == Side::Client && (conn.half_open() || !conn.up.held.is_empty()) {
            if conn.up.held.is_empty() {
                conn.held_since = now();
            }
            conn.up.held_fin = true;
            self.transmit_held(id);
        } else {
            self.push_bytes(id, side, Vec::new(), true);
        }
        self.drain();
        Ok(())
    }

    /// The socket of one end is closed (dropped, or its process killed): FIN, or RST if it had
    /// not read everything it received, or if `abort` (`SO_LINGER` 0).
    pub(crate) fn close(&mut self, id: ConnId, side: Side, abort: bool) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let end = conn.end(side);
        if !end.open {
            return;
        }
        end.open = false;
        if end.dead {
            self.gc();
            return;
        }
        let unread = conn.incoming(side).unread();
        if unread > 0 || abort {
            let (host, me, peer) = (
                conn.host(side).unwrap_or_default().to_string(),
                conn.addr(side),
                conn.addr(side.other()),
            );
            let end = conn.end(side);
            end.dead = true;
            let incoming = conn.incoming(side);
            incoming.buf.clear();
            incoming.flight.clear();
            let rtx = if side == Side::Client {
                conn.rtx.take().map(|r| r.1)
            } else {
                None
            };
            self.cancel(rtx);
            self.record(
                &host,
                Some(if side == Side::Client { me } else { peer }),
                EventKind::Reset,
                if abort {
                    format!("{me} aborts its connection: RST to {peer}")
                } else {
                    format!("{me} is closed with {unread} unread bytes: RST to {peer}")
                },
            );
            self.send_to(id, Packet::Rst(id, side.other()), side.other());
            self.drain();
        } else {
            let _ = self.shutdown(id, side);
        }
        self.gc();
    }

    /// Forgets connections nobody can observe any more.
    fn gc(&mut self) {
        let done: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                !c.client_end.open
                    && !c.server_end.open
                    && c.rtx.is_none()
                    && c.syn_timer.is_none()
                    && !matches!(c.server_state, ServerState::Request { .. })
                    && c.up.flight.is_empty()
                    && c.down.flight.is_empty()
            })
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            self.conns.remove(&id);
        }
    }
}

fn syncookie_period(t: Duration) -> u64 {
    t.as_secs() / sysctls::SYNCOOKIE_PERIOD.as_secs()
}
