//! Connections that go quiet are closed: a client that opens a connection and then sends
//! nothing (or half a request, a byte at a time, or never reads its answer) holds the server's
//! buffers only until it has been silent for the idle timeout. A phone's sync keeps its
//! connection busy across its exchanges, and a watch answers within
//! [`diaban_core::protocol::MAX_WATCH_SECS`], so the timeout is set above that.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The default: twice the longest watch.
pub const DEFAULT: Duration = Duration::from_secs(2 * diaban_core::protocol::MAX_WATCH_SECS);

/// A listener whose connections are closed after `idle` without a byte read or written.
pub struct IdleListener<L> {
    inner: L,
    idle: Duration,
}

impl<L> IdleListener<L> {
    pub fn new(inner: L, idle: Duration) -> IdleListener<L> {
        IdleListener { inner, idle }
    }
}

impl<L: axum::serve::Listener> axum::serve::Listener for IdleListener<L> {
    type Io = Quiet<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.inner.accept().await;
        (Quiet::new(io, self.idle), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that fails with `TimedOut` once it has waited `idle` for its peer.
pub struct Quiet<I> {
    io: I,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<I> Quiet<I> {
    fn new(io: I, idle: Duration) -> Quiet<I> {
        Quiet { io, idle, deadline: Box::pin(tokio::time::sleep(idle)) }
    }

    /// Something moved: the clock starts again.
    fn progressed(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// What an I/O poll came to: progress restarts the clock; pending I/O is an error once the
    /// deadline has passed (the waker is registered with the timer otherwise, so a silent peer
    /// is noticed without any traffic).
    fn watch<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle"))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Quiet<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        self.watch(cx, polled)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Quiet<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, data);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_times_out_and_one_that_talks_does_not() {
        let (server, mut client) = tokio::io::duplex(64);
        let mut quiet = Quiet::new(server, Duration::from_secs(10));
        let mut buf = [0u8; 4];
        client.write_all(b"ab").await.expect("write");
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(quiet.read(&mut buf).await.expect("read"), 2);
        tokio::time::advance(Duration::from_secs(9)).await;
        client.write_all(b"cd").await.expect("write");
        assert_eq!(quiet.read(&mut buf).await.expect("read within the timeout"), 2);
        let silent = quiet.read(&mut buf).await.expect_err("nothing more came");
        assert_eq!(silent.kind(), io::ErrorKind::TimedOut);
    }
}
