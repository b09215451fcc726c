//! Per-connection deadlines: what stops one client from holding a connection (and its file
//! descriptor and task) for ever.
//!
//! [`TimedIo`] wraps a connection's byte stream the way Go's `net/http` sets read and write
//! deadlines on its `net.Conn`, which is where Vault's `http_*_timeout` listener keys come from.
//! The connection is in one of three states, kept in the shared [`ConnState`]:
//!
//! - **waiting for a request head**: from the moment the connection is accepted (after TLS), and
//!   again from the first byte after an idle spell. Reads fail once the head deadline
//!   (`http_read_header_timeout`) has passed, so a client that sends half a header and stalls
//!   (slowloris) is disconnected.
//! - **idle**: no request in flight and no byte since the last one finished. Reads fail after
//!   `http_idle_timeout`.
//! - **busy**: at least one request is being handled. The connection itself has no read deadline
//!   then; the request's body has its own (`http_read_timeout`, enforced in `dispatch`), and the
//!   handler may take as long as it takes.
//!
//! The states are driven from two sides: the wrapper sees bytes arrive, and the service marks a
//! request's start and end with [`ConnState::begin`] (whose guard ends it on drop, also when
//! hyper drops the request future because the connection died).
//!
//! Writes have one rule in every state: a write that makes no progress for the write timeout
//! fails (the client stopped reading). This differs from Go's `WriteTimeout`, which also counts
//! the handler's time; see `docs/compat.md`.
//!
//! When the listener is at its connection cap and a new client is waiting, connections with no
//! request in flight that have been quiet (idle, or in their head) for a while are *evicted*
//! ([`ConnState::evict_if_quiet`]): their next or pending read fails at once. A slowloris that
//! fills the cap thus costs legitimate clients about a second, not a header timeout per wave.
//!
//! The wrapper sits under TLS, so the first head deadline (from accept) also bounds the
//! handshake, as Go's does, and a stalled handshake can be evicted too.
//!
//! A deadline only fires while hyper is waiting on the stream: the wrapper arms a timer whenever
//! a read or write returns `Pending`, and when the timer fires the waiting task is woken and
//! gets `ErrorKind::TimedOut`. Ending the last request in flight wakes a pending reader, so an
//! HTTP/2 connection that waits in `read` throughout still gets its idle deadline armed.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The connection-level timeouts. `None` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub head: Option<Duration>,
    pub idle: Option<Duration>,
    pub write_stall: Option<Duration>,
}

#[derive(Debug)]
struct Inner {
    in_flight: usize,
    /// When the current request head started arriving; `None` while idle or busy.
    head_started: Option<Instant>,
    /// When the connection last became idle.
    idle_since: Instant,
    /// The task waiting in `poll_read`, woken when the last request ends.
    reader: Option<Waker>,
    /// Closed to make room for a waiting client.
    evicted: bool,
}

/// What a read that is waiting must do.
enum ReadLimit {
    None,
    At(Instant),
    /// Fail now: the connection was evicted.
    Now,
}

/// The state one connection's requests and its byte stream share.
#[derive(Debug)]
pub(crate) struct ConnState {
    limits: Limits,
    inner: Mutex<Inner>,
}

impl ConnState {
    /// A freshly accepted connection: its first request head is due within the head timeout.
    pub(crate) fn new(limits: Limits) -> Arc<ConnState> {
        let now = Instant::now();
        Arc::new(ConnState {
            limits,
            inner: Mutex::new(Inner {
                in_flight: 0,
                head_started: Some(now),
                idle_since: now,
                reader: None,
                evicted: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The critical sections cannot panic; a poisoned lock still holds consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request's head has been read and its handling starts. Returns the guard that ends it
    /// and the instant its head started arriving (for the whole-request read deadline).
    pub(crate) fn begin(self: &Arc<Self>) -> (InFlight, Instant) {
        let mut g = self.lock();
        let started = g.head_started.take().unwrap_or_else(Instant::now);
        g.in_flight += 1;
        drop(g);
        (InFlight(self.clone()), started)
    }

    fn end(&self) {
        let mut g = self.lock();
        g.in_flight = g.in_flight.saturating_sub(1);
        if g.in_flight == 0 {
            g.idle_since = Instant::now();
            g.head_started = None;
            if let Some(w) = g.reader.take() {
                w.wake();
            }
        }
    }

    /// Bytes arrived: if the connection was idle, a new request head has started.
    fn note_read(&self) {
        let mut g = self.lock();
        if g.in_flight == 0 && g.head_started.is_none() {
            g.head_started = Some(Instant::now());
        }
    }

    /// When a read waiting now must give up, if ever. Records the waiting task.
    fn read_deadline(&self, waker: &Waker) -> ReadLimit {
        let mut g = self.lock();
        if g.evicted {
            return ReadLimit::Now;
        }
        if !g.reader.as_ref().is_some_and(|w| w.will_wake(waker)) {
            g.reader = Some(waker.clone());
        }
        if g.in_flight > 0 {
            return ReadLimit::None;
        }
        let at = match g.head_started {
            Some(t) => self.limits.head.map(|d| t + d),
            None => self.limits.idle.map(|d| g.idle_since + d),
        };
        at.map_or(ReadLimit::None, ReadLimit::At)
    }

    /// Evicts the connection if no request is in flight and it has been idle, or in its request
    /// head (or TLS handshake), for at least `quiet`. Returns whether it did.
    pub(crate) fn evict_if_quiet(&self, quiet: Duration) -> bool {
        let mut g = self.lock();
        let since = g.head_started.unwrap_or(g.idle_since);
        if g.evicted || g.in_flight > 0 || since.elapsed() < quiet {
            return false;
        }
        g.evicted = true;
        if let Some(w) = g.reader.take() {
            w.wake();
        }
        true
    }
}

/// One request in flight on a connection; dropping it ends the request.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// A byte stream with the deadlines of its [`ConnState`].
pub(crate) struct TimedIo<T> {
    io: T,
    state: Arc<ConnState>,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    /// Since when writes have made no progress.
    write_stalled: Option<Instant>,
}

impl<T> TimedIo<T> {
    pub(crate) fn new(io: T, state: Arc<ConnState>) -> TimedIo<T> {
        let far = Instant::now() + Duration::from_secs(86400 * 365);
        TimedIo {
            io,
            state,
            read_timer: Box::pin(tokio::time::sleep_until(far)),
            write_timer: Box::pin(tokio::time::sleep_until(far)),
            write_stalled: None,
        }
    }
}

/// Arms `timer` for `deadline`; true when it has already passed.
fn expired(timer: &mut Pin<Box<Sleep>>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    if timer.deadline() != deadline {
        timer.as_mut().reset(deadline);
    }
    timer.as_mut().poll(cx).is_ready()
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

impl<T: AsyncWrite + Unpin> TimedIo<T> {
    /// Applies the write-stall rule to the outcome of one write-side poll.
    fn on_write<R>(&mut self, r: Poll<io::Result<R>>, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        match r {
            Poll::Ready(r) => {
                self.write_stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let Some(limit) = self.state.limits.write_stall else {
                    return Poll::Pending;
                };
                let since = *self.write_stalled.get_or_insert_with(Instant::now);
                if expired(&mut self.write_timer, since + limit, cx) {
                    return Poll::Ready(Err(timed_out("response write")));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.state.note_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.state.read_deadline(cx.waker()) {
                ReadLimit::None => Poll::Pending,
                ReadLimit::Now => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection closed to make room for a waiting client",
                ))),
                ReadLimit::At(deadline) => {
                    if expired(&mut this.read_timer, deadline, cx) {
                        return Poll::Ready(Err(timed_out("request read")));
                    }
                    Poll::Pending
                }
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.on_write(r, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.on_write(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.on_write(r, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_shutdown(cx);
        this.on_write(r, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMITS: Limits = Limits {
        head: Some(Duration::from_secs(10)),
        idle: Some(Duration::from_secs(300)),
        write_stall: Some(Duration::from_secs(30)),
    };

    /// Reads once with a bound far beyond every deadline; returns the outcome and how long it took.
    async fn read_once<T: AsyncRead + Unpin>(io: &mut T) -> (io::Result<usize>, Duration) {
        let t = Instant::now();
        let mut b = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_secs(3600), io.read(&mut b))
            .await
            .expect("the read must end before the test bound");
        (r, t.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_new_connection_times_out_after_the_head_timeout() {
        let (_client, server) = tokio::io::duplex(1024);
        let mut io = TimedIo::new(server, ConnState::new(LIMITS));
        let (r, took) = read_once(&mut io).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(took, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_head_does_not_extend_the_deadline() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = TimedIo::new(server, ConnState::new(LIMITS));
        let start = Instant::now();
        let r = loop {
            // One byte every 3 s never completes a head: the deadline still falls at 10 s.
            tokio::select! {
                r = read_once(&mut io) => match r.0 {
                    Ok(_) => continue,
                    Err(e) => break e,
                },
                _ = tokio::time::sleep(Duration::from_secs(3)) => {
                    client.write_all(b"G").await.unwrap();
                }
            }
        };
        assert_eq!(r.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_then_head_then_busy() {
        let (mut client, server) = tokio::io::duplex(1024);
        let state = ConnState::new(LIMITS);
        let mut io = TimedIo::new(server, state.clone());
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(read_once(&mut io).await.0.unwrap() > 0);

        // Busy: a handler may run far past every connection deadline.
        let (guard, _) = state.begin();
        let reader = tokio::spawn(async move {
            let r = read_once(&mut io).await;
            (io, r)
        });
        tokio::time::sleep(Duration::from_secs(1000)).await;
        assert!(
            !reader.is_finished(),
            "a busy connection has no read deadline"
        );

        // Idle: the request ends; the waiting reader is woken and gets the idle deadline.
        drop(guard);
        let (_io, (r, took)) = reader.await.unwrap();
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(took, Duration::from_secs(1300));
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_byte_after_idling_starts_the_head_deadline() {
        let (mut client, server) = tokio::io::duplex(1024);
        let state = ConnState::new(LIMITS);
        let mut io = TimedIo::new(server, state.clone());
        let (g, _) = state.begin();
        drop(g);
        tokio::time::sleep(Duration::from_secs(100)).await;
        client.write_all(b"G").await.unwrap();
        assert_eq!(read_once(&mut io).await.0.unwrap(), 1);
        // Due 10 s after that byte, not at the end of the idle timeout (300 s after idling began).
        let (r, took) = read_once(&mut io).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(took, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_head_start_is_reported_to_the_request() {
        let (mut client, server) = tokio::io::duplex(1024);
        let state = ConnState::new(LIMITS);
        let mut io = TimedIo::new(server, state.clone());
        let (g, _) = state.begin();
        drop(g);
        tokio::time::sleep(Duration::from_secs(50)).await;
        let head = Instant::now();
        client.write_all(b"GET").await.unwrap();
        read_once(&mut io).await.0.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (_g, started) = state.begin();
        assert_eq!(started, head);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_fails_the_write_after_the_stall_limit() {
        let (_client, server) = tokio::io::duplex(64);
        let mut io = TimedIo::new(server, ConnState::new(LIMITS));
        let t = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(3600), io.write_all(&[0u8; 1024]))
            .await
            .expect("the write must end before the test bound");
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(t.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_up_is_not_cut_off() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = TimedIo::new(server, ConnState::new(LIMITS));
        let drain = tokio::spawn(async move {
            let mut b = [0u8; 64];
            let mut n = 0;
            while n < 1024 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                n += client.read(&mut b).await.unwrap();
            }
        });
        // Sixteen 20-second stalls, each under the 30-second limit.
        io.write_all(&[0u8; 1024]).await.unwrap();
        drain.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn only_quiet_connections_are_evicted_and_their_reader_is_woken() {
        let (mut client, server) = tokio::io::duplex(1024);
        let state = ConnState::new(LIMITS);
        let mut io = TimedIo::new(server, state.clone());
        let q = Duration::from_secs(1);
        // Too fresh.
        assert!(!state.evict_if_quiet(q));
        // Busy: never, however long.
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        read_once(&mut io).await.0.unwrap();
        let (g, _) = state.begin();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!state.evict_if_quiet(q));
        drop(g);
        // Idle for a second: evicted, and the waiting read fails at once.
        let reader = tokio::spawn(async move { read_once(&mut io).await });
        tokio::time::sleep(Duration::from_millis(999)).await;
        assert!(!state.evict_if_quiet(q));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(state.evict_if_quiet(q));
        let (r, took) = reader.await.unwrap();
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(took, Duration::from_secs(1));
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn no_limits_means_no_deadlines() {
        let none = Limits {
            head: None,
            idle: None,
            write_stall: None,
        };
        let (_client, server) = tokio::io::duplex(64);
        let mut io = TimedIo::new(server, ConnState::new(none));
        let mut b = [0u8; 8];
        assert!(
            tokio::time::timeout(Duration::from_secs(100_000), io.read(&mut b))
                .await
                .is_err()
        );
    }
}
