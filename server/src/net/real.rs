//! The real network: sockets made with socket2 (so the backlog is ours to set) and driven by
//! tokio.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::OnceLock;

use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream};

use super::{Listener, Net};

/// Listening sockets handed to a re-executed master: `addr=fd,addr=fd`.
pub const INHERITED_SOCKETS_ENV: &str = "WSGILAB_INHERITED_SOCKETS";

/// The socket a previous image of this process left open for `addr`, if any.
fn inherited(addr: SocketAddr) -> Option<Socket> {
    let spec = std::env::var(INHERITED_SOCKETS_ENV).ok()?;
    let fd: i32 = spec.split(',').find_map(|entry| {
        let (a, fd) = entry.rsplit_once('=')?;
        (a.parse::<SocketAddr>().ok()? == addr).then(|| fd.parse().ok())?
    })?;
    // SAFETY: the previous image of this process kept this descriptor open for us, and
    // nothing else in this process owns it.
    let socket = unsafe { <Socket as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    socket.set_cloexec(true).ok()?;
    Some(socket)
}

/// Sockets of the machine this process runs on.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealNet;

/// A listening socket. It joins an event loop only when this process first accepts on it: the
/// master, which never accepts, would otherwise be woken by every connection that arrives on an
/// empty accept queue (with `Connection: close` clients, about once a request), taking CPU from
/// the workers.
pub struct RealListener {
    socket: std::net::TcpListener,
    accepting: OnceLock<TcpListener>,
}

impl RealListener {
    fn new(socket: std::net::TcpListener) -> io::Result<RealListener> {
        socket.set_nonblocking(true)?;
        Ok(RealListener {
            socket,
            accepting: OnceLock::new(),
        })
    }

    /// The socket registered with this thread's event loop (a duplicate descriptor of it).
    fn accepting(&self) -> io::Result<&TcpListener> {
        if let Some(listener) = self.accepting.get() {
            return Ok(listener);
        }
        let registered = TcpListener::from_std(self.socket.try_clone()?)?;
        Ok(self.accepting.get_or_init(|| registered))
    }
}

impl Net for RealNet {
    type Listener = RealListener;
    type Stream = TcpStream;
    type Shared = OwnedFd;

    fn bind(&self, addr: SocketAddr, backlog: u32) -> io::Result<RealListener> {
        let socket = match inherited(addr) {
            // A reload: the socket never closed, so no connection was refused meanwhile.
            Some(socket) => socket,
            None => {
                let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
                // As uWSGI does: a restarted server can bind while old connections sit in
                // TIME_WAIT.
                socket.set_reuse_address(true)?;
                if addr.is_ipv6() {
                    socket.set_only_v6(true)?;
                }
                socket.bind(&addr.into())?;
                socket
            }
        };
        // Responses are written whole; Nagle would only delay the last segment. Linux hands
        // TCP_NODELAY down to every accepted connection: one setsockopt here instead of one
        // per connection.
        socket.set_tcp_nodelay(true)?;
        socket.listen(backlog.min(i32::MAX as u32) as i32)?;
        RealListener::new(socket.into())
    }

    fn share(&self, listener: &RealListener) -> io::Result<OwnedFd> {
        listener.socket.as_fd().try_clone_to_owned()
    }

    fn adopt(&self, shared: OwnedFd) -> io::Result<RealListener> {
        RealListener::new(std::net::TcpListener::from(shared))
    }
}

impl Listener for RealListener {
    type Stream = TcpStream;

    async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.accepting()?.accept().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn fd(&self) -> i32 {
        self.socket.as_raw_fd()
    }

    fn queue_depth(&self) -> Option<(u32, u32)> {
        // For a listening socket Linux reports the accept queue in TCP_INFO: tcpi_unacked is
        // its length, tcpi_sacked its limit (what uWSGI's master reads too).
        // SAFETY: getsockopt writes at most `len` bytes into the zeroed tcp_info.
        unsafe {
            let mut info: nix::libc::tcp_info = std::mem::zeroed();
            let mut len = std::mem::size_of::<nix::libc::tcp_info>() as nix::libc::socklen_t;
            let rc = nix::libc::getsockopt(
                self.socket.as_raw_fd(),
                nix::libc::IPPROTO_TCP,
                nix::libc::TCP_INFO,
                (&mut info as *mut nix::libc::tcp_info).cast(),
                &mut len,
            );
            (rc == 0).then_some((info.tcpi_unacked, info.tcpi_sacked))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_inherit_no_delay() {
        let listener = RealNet
            .bind("127.0.0.1:0".parse().unwrap(), 16)
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap(), "Nagle would delay responses");
    }
}
