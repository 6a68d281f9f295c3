//! The simulated network: the `Net` seam for turmoil hosts, with a model of Linux's TCP
//! handshake and accept queue that reproduces what this machine's kernel does when a server is
//! slower than its clients.
//!
//! # What happens, and why
//!
//! A listening socket with backlog *b* (capped at `somaxconn`) holds up to *b*+1 established,
//! not yet accepted connections, and up to *b* half-open ones (request sockets):
//!
//! - A **SYN** that finds the accept queue full is dropped; the client retransmits it after 1 s,
//!   then 1 s again while `tcp_syn_linear_timeouts` lasts, then 2 s, 4 s, ... and gives up
//!   with ETIMEDOUT after `tcp_syn_retries` + `tcp_syn_linear_timeouts` retransmissions. A SYN
//!   that finds room gets a **SYN-ACK**, and the client's `connect()` returns. When the request
//!   queue is as long as the backlog, the SYN-ACK is a *syncookie* and the server keeps nothing.
//! - The client's **ACK** joins the accept queue if there is room. If not, the server drops it
//!   (or answers RST with `tcp_abort_on_overflow`) and the connection stays **half-open**: the
//!   client believes it is connected and sends its request, which is not acknowledged. It gets
//!   in later in one of two ways, both measured here: the server retransmits its SYN-ACK (1 s,
//!   2 s, 4 s, ..., `tcp_synack_retries`; not for a syncookie) and the client's answering ACK
//!   finds room; or the client retransmits its unacknowledged request (a tail-loss probe after
//!   200 ms, then 200 ms, 400 ms, 800 ms, ...), which carries an ACK too — the way most waiting
//!   HTTP clients get in. The request bytes reach the server with the transmission that finds
//!   the connection established.
//! - Nobody listening (or a listener bound to 127.0.0.1 and a client on another host): RST,
//!   `connect()` fails with ECONNREFUSED at once.
//! - A socket closed with unread bytes sends RST, otherwise FIN: the peer reads what was sent,
//!   then EOF, or ECONNRESET. A killed process's streams are dropped, which closes them so.
//!
//! *When* things happen comes from two details of the kernel that a model with latencies alone
//! gets wrong ([`sysctls`] has the measurements):
//!
//! - **Loopback is synchronous.** A packet to the same host is processed before the sending
//!   system call returns: a `connect()` to a listener with room completes its handshake inside
//!   the call. So clients started one after another each see the queue as the previous one
//!   left it, and workers blocked in `accept()` take connections in between — ARCHITECTURE.md's
//!   "7 clients connected at once" with 2 workers and a queue of 5.
//! - **Timers share wheel buckets.** Retransmission timers are rounded up to the Linux timer
//!   wheel's buckets (32 ms wide for a 1 s timer at `HZ=250`), so clients whose SYNs were
//!   dropped within the same few milliseconds retransmit in the *same* timer softirq. Its
//!   packets are then processed first in, first out: every SYN, then every SYN-ACK, then every
//!   ACK — all nine retransmitted SYNs of the uWSGI measurement find the queue not full and get
//!   a SYN-ACK ("connect() returned after ≈1.0 s although only 2 queue slots had freed"), and
//!   seven of their ACKs are dropped.
//!
//! # Built on turmoil, not on turmoil's TCP
//!
//! turmoil provides the hosts, their addresses, the clock and the scheduling. Its TCP cannot
//! carry this model: its `connect()` returns only once its listener has accepted (there is no
//! accept queue, so no half-open state in which the client has a stream but the server has no
//! socket), its SYN queue panics when it overflows, it has no retransmission, its `bind` refuses
//! the host's own address, and its default link latency is random. So the byte streams are
//! ours too: in-memory pipes between the two ends, with Linux's EOF/RST rules, a bounded buffer
//! per direction, and the sender's `link_latency` between hosts. The kernel's timers are run by
//! a task on the runtime of each host that uses the network (see `kernel`).
//!
//! # Determinism
//!
//! All state is in `BTreeMap`s and queues, ordered by creation; timers fire in (time, order of
//! arming); nothing reads a wall clock or the OS's randomness; the one `select!` is `biased`.

mod kernel;
mod stream;
pub mod sysctls;

#[cfg(test)]
mod tests;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use server::net::{Listener, Net};

use crate::trace::Trace;
use kernel::{Kernel, ListenerId};
pub use stream::SimStream;
pub use sysctls::Sysctls;

/// One host's view of the simulated network: its TCP stack. Clones share it; hosts made with
/// [`SimNet::with_host`] share the network.
#[derive(Clone)]
pub struct SimNet {
    kernel: Arc<Kernel>,
    host: String,
}

impl SimNet {
    /// A new network with one host, `host`, which must be (or become) the name of a turmoil
    /// host: its address is turmoil's. Network events go to `trace`.
    pub fn new(trace: Trace, host: &str, sysctls: Sysctls) -> SimNet {
        let kernel = Kernel::new(trace);
        kernel.with(|state| state.add_host(host, sysctls, None));
        SimNet {
            kernel,
            host: host.to_string(),
        }
    }

    /// Another host on the same network (or this one with new sysctls).
    pub fn with_host(&self, host: &str, sysctls: Sysctls) -> SimNet {
        self.kernel
            .with(|state| state.add_host(host, sysctls, None));
        SimNet {
            kernel: self.kernel.clone(),
            host: host.to_string(),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host's address (turmoil's, once inside the simulation).
    pub fn ip(&self) -> IpAddr {
        let host = self.host.clone();
        self.kernel.with(|state| state.host_ip(&host))
    }

    pub fn sysctls(&self) -> Sysctls {
        let host = self.host.clone();
        self.kernel.with(|state| state.sysctls(&host))
    }

    /// Whether processes on this host may bind ports below `ip_unprivileged_port_start` (root,
    /// or `CAP_NET_BIND_SERVICE`). Off by default.
    pub fn set_privileged(&self, privileged: bool) {
        let host = self.host.clone();
        self.kernel
            .with(|state| state.set_privileged(&host, privileged));
    }

    /// Keeps this host's listening socket on `addr` open across an `exec()` of the process
    /// that holds it (as a descriptor without close-on-exec is): the new image's `bind()` of
    /// the same address gets the same socket back. False if nothing listens there.
    pub fn keep_for_exec(&self, addr: SocketAddr) -> bool {
        let host = self.host.clone();
        self.kernel.with(|state| state.keep_for_exec(&host, addr))
    }

    /// Opens a connection as a client on this host: Linux's `connect()`, which returns when the
    /// SYN-ACK arrives — possibly before the server has a place for the connection.
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<SimStream> {
        self.kernel.ensure_driver(&self.host);
        let host = self.host.clone();
        let id = self.kernel.with(|state| state.connect(&host, addr));
        stream::Connect {
            kernel: self.kernel.clone(),
            host,
            id,
            done: false,
        }
        .await
    }
}

impl std::fmt::Debug for SimNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNet").field("host", &self.host).finish()
    }
}

/// The listening socket itself, shared by every descriptor that refers to it: the kernel closes
/// it when the last one goes.
struct Socket {
    kernel: Arc<Kernel>,
    host: String,
    id: ListenerId,
    addr: SocketAddr,
    fd: i32,
}

impl Drop for Socket {
    fn drop(&mut self) {
        let id = self.id;
        self.kernel.with(|state| state.close_listener(id));
    }
}

/// A listening socket of a simulated host.
pub struct SimListener {
    socket: Arc<Socket>,
}

/// A listening socket on its way into a forked worker: the same socket, as an inherited file
/// descriptor is.
pub struct SimShared(Arc<Socket>);

impl Net for SimNet {
    type Listener = SimListener;
    type Stream = SimStream;
    type Shared = SimShared;

    /// `socket()` + `bind()` + `listen()`, with the kernel's errors: EACCES below
    /// `ip_unprivileged_port_start` without privilege, EADDRINUSE if a listener of this host
    /// already has the port (for an overlapping address), EADDRNOTAVAIL for an address the host
    /// does not have. A listener bound to 127.0.0.1 is reachable from this host only.
    fn bind(&self, addr: SocketAddr, backlog: u32) -> io::Result<SimListener> {
        self.kernel.ensure_driver(&self.host);
        let host = self.host.clone();
        let (id, addr, fd) = self.kernel.with(|state| state.bind(&host, addr, backlog))?;
        Ok(SimListener {
            socket: Arc::new(Socket {
                kernel: self.kernel.clone(),
                host,
                id,
                addr,
                fd,
            }),
        })
    }

    fn share(&self, listener: &SimListener) -> io::Result<SimShared> {
        Ok(SimShared(listener.socket.clone()))
    }

    fn adopt(&self, shared: SimShared) -> io::Result<SimListener> {
        Ok(SimListener { socket: shared.0 })
    }
}

impl Listener for SimListener {
    type Stream = SimStream;

    fn accept(&self) -> impl std::future::Future<Output = io::Result<(SimStream, SocketAddr)>> {
        stream::Accept {
            kernel: self.socket.kernel.clone(),
            host: self.socket.host.clone(),
            listener: self.socket.id,
            waiter: None,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.socket.addr)
    }

    /// The lowest descriptor number free among this host's listening sockets, from 3 (0, 1
    /// and 2 are the standard streams), as the first socket of uWSGI's log is `fd 3`.
    fn fd(&self) -> i32 {
        self.socket.fd
    }

    /// What Linux's `TCP_INFO` reports for a listening socket: `tcpi_unacked`, the accept
    /// queue's length, and `tcpi_sacked`, the backlog as `listen()` set it (capped at
    /// `somaxconn`). The queue may hold one more than that.
    fn queue_depth(&self) -> Option<(u32, u32)> {
        let id = self.socket.id;
        self.socket.kernel.with(|state| state.queue_depth(id))
    }

    fn defer_accept(&self, wait: std::time::Duration) -> io::Result<()> {
        let id = self.socket.id;
        self.socket
            .kernel
            .with(|state| state.set_defer_accept(id, wait));
        Ok(())
    }
}

impl std::fmt::Debug for SimListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimListener")
            .field("addr", &self.socket.addr)
            .field("fd", &self.socket.fd)
            .finish()
    }
}
