//! The network seam: the listening socket with its backlog (the kernel's accept queue sits behind
//! it), accepting connections, and the byte streams the worker reads requests from and writes
//! responses to.
//!
//! The master and worker only ever see these traits. [`real`] implements them with socket2 and
//! tokio; the simulation implements them over turmoil plus its own model of Linux's accept queue.

pub mod real;

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// Binds listening sockets.
pub trait Net {
    type Listener: Listener<Stream = Self::Stream>;
    type Stream: ByteStream;
    /// A listening socket on its way into a forked worker (which accepts on the same socket).
    type Shared: Send + 'static;

    /// Binds `addr` and listens with `backlog` (the kernel caps it at `net.core.somaxconn`).
    /// Errors are the kernel's: `AddrInUse`, `PermissionDenied`, ...
    fn bind(&self, addr: SocketAddr, backlog: u32) -> io::Result<Self::Listener>;

    /// Prepares the listener to be inherited by a worker.
    fn share(&self, listener: &Self::Listener) -> io::Result<Self::Shared>;

    /// The inherited listener, inside the worker.
    fn adopt(&self, shared: Self::Shared) -> io::Result<Self::Listener>;
}

/// An accepted connection: bytes both ways (`shutdown` sends a FIN), and the abortive close.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin {
    /// Closes the connection with a RST (`SO_LINGER` with a zero timeout) instead of a FIN:
    /// the peer reads an error, not an end — what a response delimited by the close must end
    /// with when it is cut short, or it would look complete.
    fn reset(self);
}

/// A listening socket: established connections wait in its accept queue until accepted.
pub trait Listener {
    type Stream;

    /// Takes the oldest connection from the accept queue, waiting for one if it is empty.
    fn accept(&self) -> impl std::future::Future<Output = io::Result<(Self::Stream, SocketAddr)>>;

    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// The file descriptor number the log names (`fd 3`); the simulation makes one up.
    fn fd(&self) -> i32;

    /// The accept queue as the kernel reports it (`TCP_INFO`): connections waiting, and the
    /// backlog (the queue really holds one more). `None` where it cannot be read.
    fn queue_depth(&self) -> Option<(u32, u32)>;

    /// `TCP_DEFER_ACCEPT`, as uWSGI sets on its sockets unless `--no-defer-accept`: a
    /// connection joins the accept queue when its first bytes arrive, not when its handshake
    /// completes, so a worker never accepts a client that has not sent its request yet. One
    /// that sends nothing joins after about `wait` (the kernel counts it in SYN-ACK
    /// retransmissions: 4 s is three of them, 1 + 2 + 4 s).
    fn defer_accept(&self, wait: std::time::Duration) -> io::Result<()>;
}
