//! [`StallIo`]: a connection whose writes make no progress for a while is
//! closed.
//!
//! A client that stops reading (a zero TCP window) leaves the server's
//! write pending forever, holding the connection, its task and whatever the
//! response streams (an open blob file). Hyper has no write timeout, so
//! the connection's IO is wrapped: a write or flush that stays pending for
//! `stall` fails with [`std::io::ErrorKind::TimedOut`], and hyper drops the
//! connection. Reads are not bounded here: hyper's header read timeout
//! bounds the wait for a request (and idle keep-alive), the request timeout
//! and [`super::pace`] bound bodies.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `inner`, whose writes fail once they stay pending for `stall`.
pub struct StallIo<T> {
    inner: T,
    stall: Duration,
    /// Armed while a write or flush is pending.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<T> StallIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, stall: Duration) -> Self {
        StallIo {
            inner,
            stall,
            timer: None,
        }
    }

    /// What to answer for a pending write: still pending, or the error
    /// once it has been pending for `stall`.
    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<R>> {
        let stall = self.stall;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + stall)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.timer = None;
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the client read nothing for {} s; connection closed (serve --stall-timeout-s)",
                        stall.as_secs()
                    ),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => this.pending(cx),
            ready => {
                this.timer = None;
                ready
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.pending(cx),
            ready => {
                this.timer = None;
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.pending(cx),
            ready => {
                this.timer = None;
                ready
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => this.pending(cx),
            ready => {
                this.timer = None;
                ready
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_write_the_peer_never_reads_fails_after_the_stall_time() {
        // A pipe with a 16-byte buffer whose other end nobody reads.
        let (near, _far) = tokio::io::duplex(16);
        let mut io = StallIo::new(near, Duration::from_secs(60));
        io.write_all(&[0u8; 16]).await.unwrap();
        let error = io.write_all(&[0u8; 16]).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(
            error.to_string().contains("read nothing for 60 s"),
            "{error}"
        );
    }
}
