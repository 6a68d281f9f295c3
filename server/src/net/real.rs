//! The real network: sockets made with socket2 (so the backlog is ours to set) and driven by
//! tokio.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream};

use super::{Listener, Net};

/// Sockets of the machine this process runs on.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealNet;

pub struct RealListener {
    inner: TcpListener,
}

impl Net for RealNet {
    type Listener = RealListener;
    type Stream = TcpStream;

    fn bind(&self, addr: SocketAddr, backlog: u32) -> io::Result<RealListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        // As uWSGI does: a restarted server can bind while old connections sit in TIME_WAIT.
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(backlog.min(i32::MAX as u32) as i32)?;
        socket.set_nonblocking(true)?;
        let inner = TcpListener::from_std(socket.into())?;
        Ok(RealListener { inner })
    }
}

impl Listener for RealListener {
    type Stream = TcpStream;

    async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        // Responses are written whole; Nagle would only delay the last segment.
        stream.set_nodelay(true)?;
        Ok((stream, peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn fd(&self) -> i32 {
        self.inner.as_raw_fd()
    }
}
