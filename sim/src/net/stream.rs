//! The byte stream of one end of a simulated connection, and the futures of `connect()` and
//! `accept()`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::kernel::{ConnId, Kernel, ListenerId, Side};

/// One end of a simulated TCP connection: the client's from [`super::SimNet::connect`], the
/// server's from `accept()`.
///
/// Reads return what the peer wrote, then EOF after its FIN; a RST makes the next read or write
/// fail with ECONNRESET (EPIPE if the peer's FIN had already arrived), after which reads return
/// EOF and writes EPIPE — Linux's order. `poll_shutdown` sends a FIN. Dropping the stream closes
/// the socket as the kernel does when a process exits: a FIN, or a RST if bytes it received
/// were never read.
pub struct SimStream {
    kernel: Arc<Kernel>,
    /// The host whose socket this is.
    host: String,
    id: ConnId,
    side: Side,
    local: SocketAddr,
    peer: SocketAddr,
}

impl SimStream {
    pub(crate) fn new(
        kernel: Arc<Kernel>,
        host: String,
        id: ConnId,
        side: Side,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> SimStream {
        SimStream {
            kernel,
            host,
            id,
            side,
            local,
            peer,
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// Closes the connection with a RST whatever is unread (`SO_LINGER` with a zero timeout).
    pub fn reset(self) {
        let (id, side) = (self.id, self.side);
        self.kernel.with(|state| state.close(id, side, true));
    }
}

impl server::net::ByteStream for SimStream {
    fn reset(self) {
        SimStream::reset(self)
    }
}

impl std::fmt::Debug for SimStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimStream")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .finish()
    }
}

impl AsyncRead for SimStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.kernel.ensure_driver(&self.host);
        let (id, side) = (self.id, self.side);
        self.kernel.with(|state| state.poll_read(id, side, buf, cx))
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.kernel.ensure_driver(&self.host);
        let (id, side) = (self.id, self.side);
        self.kernel
            .with(|state| state.poll_write(id, side, buf, cx))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.kernel.ensure_driver(&self.host);
        let (id, side) = (self.id, self.side);
        Poll::Ready(self.kernel.with(|state| state.shutdown(id, side)))
    }
}

impl Drop for SimStream {
    fn drop(&mut self) {
        let (id, side) = (self.id, self.side);
        self.kernel.with(|state| state.close(id, side, false));
    }
}

/// `connect()` waiting for its SYN-ACK.
pub(crate) struct Connect {
    pub(crate) kernel: Arc<Kernel>,
    pub(crate) host: String,
    pub(crate) id: ConnId,
    pub(crate) done: bool,
}

impl Future for Connect {
    type Output = io::Result<SimStream>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.kernel.ensure_driver(&self.host);
        let id = self.id;
        let polled = self.kernel.with(|state| state.poll_connect(id, cx));
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.done = true;
                Poll::Ready(result.map(|(local, peer)| {
                    SimStream::new(
                        self.kernel.clone(),
                        self.host.clone(),
                        id,
                        Side::Client,
                        local,
                        peer,
                    )
                }))
            }
        }
    }
}

impl Drop for Connect {
    fn drop(&mut self) {
        if !self.done {
            let id = self.id;
            self.kernel.with(|state| state.abandon_connect(id));
        }
    }
}

/// `accept()` waiting for a connection.
pub(crate) struct Accept {
    pub(crate) kernel: Arc<Kernel>,
    pub(crate) host: String,
    pub(crate) listener: ListenerId,
    pub(crate) waiter: Option<u64>,
}

impl Future for Accept {
    type Output = io::Result<(SimStream, SocketAddr)>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.kernel.ensure_driver(&self.host);
        let listener = self.listener;
        let mut waiter = self.waiter;
        let polled = self
            .kernel
            .with(|state| state.poll_accept(listener, &mut waiter, cx));
        self.waiter = waiter;
        polled.map(|result| {
            result.map(|(id, peer, local)| {
                (
                    SimStream::new(
                        self.kernel.clone(),
                        self.host.clone(),
                        id,
                        Side::Server,
                        local,
                        peer,
                    ),
                    peer,
                )
            })
        })
    }
}

impl Drop for Accept {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter {
            let listener = self.listener;
            self.kernel
                .with(|state| state.drop_accept(listener, waiter));
        }
    }
}
