//! The real network: sockets made with socket2 (so the backlog is ours to set) and driven by
//! tokio. A socket joins tokio's event loop only once it would block.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};

use socket2::{Domain, SockRef, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::coop;

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
    accepting: OnceLock<AsyncFd<mio::net::TcpListener>>,
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
    fn accepting(&self) -> io::Result<&AsyncFd<mio::net::TcpListener>> {
        if let Some(listener) = self.accepting.get() {
            return Ok(listener);
        }
        let listener = mio::net::TcpListener::from_std(self.socket.try_clone()?);
        // SAFETY: the AsyncFd owns the listener, which owns its descriptor: it stays open, and
        // as_raw_fd keeps returning it, for as long as the AsyncFd lives.
        let registered = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(self.accepting.get_or_init(|| registered))
    }
}

impl Net for RealNet {
    type Listener = RealListener;
    type Stream = RealStream;
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
    type Stream = RealStream;

    async fn accept(&self) -> io::Result<(RealStream, SocketAddr)> {
        // mio accepts with SOCK_NONBLOCK | SOCK_CLOEXEC: the connection is ready for plain
        // non-blocking calls without another syscall.
        let (stream, peer) = self
            .accepting()?
            .async_io(Interest::READABLE, |listener| listener.accept())
            .await?;
        Ok((RealStream::accepted(stream), peer))
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

    fn defer_accept(&self, wait: std::time::Duration) -> io::Result<()> {
        let secs = nix::libc::c_int::try_from(wait.as_secs()).unwrap_or(nix::libc::c_int::MAX);
        // SAFETY: setsockopt reads one c_int from the pointer it is given.
        let rc = unsafe {
            nix::libc::setsockopt(
                self.socket.as_raw_fd(),
                nix::libc::IPPROTO_TCP,
                nix::libc::TCP_DEFER_ACCEPT,
                (&secs as *const nix::libc::c_int).cast(),
                std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// An accepted connection. Its first request (head and body) is read, and its responses
/// written, with plain non-blocking calls; it joins the event loop when a call would block, or
/// when it reads after a response (a kept-alive connection's next request). With `Connection:
/// close` clients the request is in the socket when it is accepted (the listener defers
/// accepting until it is, see `Listener::defer_accept`) and the response fits its send buffer,
/// so the connection is served and closed without ever being registered: two `epoll_ctl`
/// calls (add, and delete at the close) fewer per connection.
///
/// Later requests go through the event loop so that connections take turns: a worker that
/// read them with plain calls served a connection whose next request was already waiting
/// ahead of every connection that had to be woken (with Django and 8 keep-alive clients, one
/// connection waited seconds). The plain calls also spend tokio's cooperative budget, as
/// tokio's own sockets do, so that a run of them still lets the event loop run.
pub enum RealStream {
    /// Not in the event loop yet. `stream` is `None` only while it moves into it.
    Unregistered {
        stream: Option<mio::net::TcpStream>,
        /// It has written a response: the next read is for another request and joins the
        /// event loop. Until then reads belong to the request being served (its body, with an
        /// upload), which has had its turn already.
        has_responded: bool,
    },
    Registered(TcpStream),
}

impl RealStream {
    fn accepted(stream: mio::net::TcpStream) -> Self {
        RealStream::Unregistered {
            stream: Some(stream),
            has_responded: false,
        }
    }

    /// Joins the event loop.
    fn register(&mut self) -> io::Result<&mut TcpStream> {
        if let RealStream::Unregistered { stream, .. } = self {
            let stream = stream.take().ok_or_else(|| {
                io::Error::other("a connection lost while joining the event loop")
            })?;
            *self = RealStream::Registered(TcpStream::from_std(stream.into())?);
        }
        match self {
            RealStream::Registered(stream) => Ok(stream),
            RealStream::Unregistered { .. } => unreachable!("registered just above"),
        }
    }

    /// The socket for a read with a plain call: one before the connection's first response.
    fn plain_read(&self) -> Option<&mio::net::TcpStream> {
        match self {
            RealStream::Unregistered {
                stream: Some(stream),
                has_responded: false,
            } => Some(stream),
            _ => None,
        }
    }

    /// The socket for a write with a plain call, and the flag that the write sets.
    fn plain_write(&mut self) -> Option<(&mio::net::TcpStream, &mut bool)> {
        match self {
            RealStream::Unregistered {
                stream: Some(stream),
                has_responded,
            } => Some((stream, has_responded)),
            _ => None,
        }
    }

    /// A write: with a plain call (`plain`) before the connection joins the event loop, through
    /// the event loop (`evented`) after, or when the plain call would block.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        plain: impl FnOnce(SockRef<'_>) -> io::Result<usize>,
        evented: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if let Some((stream, has_responded)) = self.plain_write() {
            let budget = ready!(coop::poll_proceed(cx));
            if let Some(sent) = unless_blocked(plain(SockRef::from(stream))) {
                budget.made_progress();
                *has_responded = true;
                return Poll::Ready(sent);
            }
        }
        match self.register() {
            Ok(stream) => evented(Pin::new(stream), cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// A plain call's result, or `None` when the call would block (or was interrupted) and must be
/// retried through the event loop.
fn unless_blocked<T>(result: io::Result<T>) -> Option<io::Result<T>> {
    match result {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            None
        }
        done => Some(done),
    }
}

impl super::ByteStream for RealStream {
    fn reset(self) {
        let linger = Some(std::time::Duration::ZERO);
        // If SO_LINGER cannot be set the close is a plain one: nothing better is left to do.
        let _ = match &self {
            RealStream::Unregistered {
                stream: Some(stream),
                ..
            } => SockRef::from(stream).set_linger(linger),
            RealStream::Unregistered { stream: None, .. } => Ok(()),
            RealStream::Registered(stream) => SockRef::from(stream).set_linger(linger),
        };
        drop(self);
    }
}

impl AsyncRead for RealStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(stream) = this.plain_read() {
            let budget = ready!(coop::poll_proceed(cx));
            // SAFETY: recv only writes into the unfilled part and returns how much it wrote.
            let received = SockRef::from(stream).recv(unsafe { buf.unfilled_mut() });
            if let Some(received) = unless_blocked(received) {
                budget.made_progress();
                return Poll::Ready(received.map(|n| {
                    // SAFETY: recv initialised these `n` bytes.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                }));
            }
        }
        match this.register() {
            Ok(stream) => Pin::new(stream).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for RealStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_send(
            cx,
            |socket| socket.send(data),
            |stream, cx| stream.poll_write(cx, data),
        )
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        parts: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_send(
            cx,
            |socket| socket.send_vectored(parts),
            |stream, cx| stream.poll_write_vectored(cx, parts),
        )
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RealStream::Unregistered {
                stream: Some(stream),
                ..
            } => Poll::Ready(stream.shutdown(std::net::Shutdown::Write)),
            RealStream::Unregistered { stream: None, .. } => Poll::Ready(Ok(())),
            RealStream::Registered(stream) => Pin::new(stream).poll_shutdown(cx),
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
        let Some(socket) = accepted.plain_read() else {
            panic!("a connection just accepted is not in the event loop yet");
        };
        assert!(socket.nodelay().unwrap(), "Nagle would delay responses");
    }

    async fn accepted_pair(listener: &RealListener) -> (TcpStream, RealStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        (client, accepted)
    }

    /// Sends `bytes` from the client, lets them cross loopback, and reads them on the server.
    async fn arrives(client: &mut TcpStream, server: &mut RealStream, bytes: &[u8]) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        client.write_all(bytes).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut read = Vec::with_capacity(64);
        server.read_buf(&mut read).await.unwrap();
        assert_eq!(read, bytes);
    }

    const NO_CONTENT: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";

    /// Writes a whole response, which fits the socket buffer: no call would block.
    async fn responds(server: &mut RealStream) {
        use tokio::io::AsyncWriteExt;
        server.write_all(NO_CONTENT).await.unwrap();
        assert!(!matches!(server, RealStream::Registered(_)));
    }

    fn listener() -> RealListener {
        RealNet
            .bind("127.0.0.1:0".parse().unwrap(), 16)
            .expect("bind")
    }

    #[tokio::test]
    async fn a_request_already_there_is_served_without_joining_the_event_loop() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = listener();
        let (mut client, mut server) = accepted_pair(&listener).await;
        arrives(&mut client, &mut server, b"GET / HTTP/1.1\r\n\r\n").await;
        responds(&mut server).await;
        server.shutdown().await.unwrap();
        assert!(!matches!(server, RealStream::Registered(_)));
        let mut response = Vec::new();
        client.read_to_end(&mut response).await.unwrap();
        assert_eq!(response, NO_CONTENT);
    }

    /// A kept-alive connection's next request is read through the event loop, where it waits
    /// its turn, even when it is already there.
    #[tokio::test]
    async fn a_read_after_a_response_joins_the_event_loop() {
        let listener = listener();
        let (mut client, mut server) = accepted_pair(&listener).await;
        arrives(&mut client, &mut server, b"GET /a HTTP/1.1\r\n\r\n").await;
        responds(&mut server).await;
        arrives(&mut client, &mut server, b"GET /b").await;
        assert!(matches!(server, RealStream::Registered(_)));
    }

    /// A head and a body chunk leave in one call, whether or not the connection has joined the
    /// event loop (a stream without vectored writes would take only the head).
    #[tokio::test]
    async fn a_vectored_write_sends_every_part_in_one_call() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = listener();
        let (mut client, mut server) = accepted_pair(&listener).await;
        let body = vec![b'x'; 20_000];
        for request in [&b"GET /a HTTP/1.1\r\n\r\n"[..], b"GET /b HTTP/1.1\r\n\r\n"] {
            arrives(&mut client, &mut server, request).await;
            let parts = [io::IoSlice::new(NO_CONTENT), io::IoSlice::new(&body)];
            assert!(server.is_write_vectored());
            let sent = server.write_vectored(&parts).await.unwrap();
            assert_eq!(sent, NO_CONTENT.len() + body.len());
            let mut received = vec![0; sent];
            client.read_exact(&mut received).await.unwrap();
            assert_eq!(&received[..NO_CONTENT.len()], NO_CONTENT);
            assert_eq!(&received[NO_CONTENT.len()..], &body[..]);
        }
        assert!(matches!(server, RealStream::Registered(_)));
    }

    /// An upload's body belongs to the request being served: read with plain calls too.
    #[tokio::test]
    async fn a_body_read_before_the_response_stays_out_of_the_event_loop() {
        let listener = listener();
        let (mut client, mut server) = accepted_pair(&listener).await;
        arrives(
            &mut client,
            &mut server,
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n",
        )
        .await;
        arrives(&mut client, &mut server, b"body").await;
        assert!(!matches!(server, RealStream::Registered(_)));
    }

    /// With TCP_DEFER_ACCEPT a connected client that has sent nothing is not accepted yet.
    #[tokio::test]
    async fn a_deferred_accept_waits_for_the_first_bytes() {
        use tokio::io::AsyncWriteExt;
        let listener = listener();
        listener
            .defer_accept(std::time::Duration::from_secs(4))
            .unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let early = tokio::time::timeout(std::time::Duration::from_millis(200), listener.accept());
        assert!(early.await.is_err(), "accepted before the request came");
        client.write_all(b"GET").await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let mut request = Vec::with_capacity(8);
        tokio::io::AsyncReadExt::read_buf(&mut server, &mut request)
            .await
            .unwrap();
        assert_eq!(request, b"GET");
    }

    #[tokio::test]
    async fn a_read_that_would_block_joins_the_event_loop_and_waits() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = listener();
        let (mut client, mut server) = accepted_pair(&listener).await;
        let reader = async {
            let mut request = Vec::with_capacity(64);
            server.read_buf(&mut request).await.unwrap();
            (request, matches!(server, RealStream::Registered(_)))
        };
        let writer = async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            client.write_all(b"late").await.unwrap();
        };
        let ((request, registered), ()) = tokio::join!(reader, writer);
        assert_eq!(request, b"late");
        assert!(registered, "waiting for the request needs the event loop");
    }
}
