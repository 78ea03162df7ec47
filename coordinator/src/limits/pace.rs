//! [`Paced`]: a blob body that must keep moving.
//!
//! Blob uploads and downloads are not bounded by the request timeout (a
//! large blob legitimately takes minutes); instead each body must average
//! at least `min_rate` bytes per second after a first `grace`, and an
//! upload must move a byte at least every `idle` (a download whose client
//! stops reading is caught one layer down, where the write stalls:
//! [`super::stall`]). A body that falls behind ends with an
//! [`std::io::ErrorKind::TimedOut`] error, which cuts the transfer (an
//! upload is discarded; a download's connection is closed short of its
//! `Content-Length`, which clients see as an interrupted download and
//! resume).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

/// The bounds of one transfer.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Longest time without a byte (`None`: not checked here).
    pub idle: Option<Duration>,
    /// Time before the rate is checked.
    pub grace: Duration,
    /// Slowest average rate, bytes per second (after `grace`).
    pub min_rate: u64,
}

impl Pace {
    /// When a transfer that began at `start`, moved `bytes` and last moved
    /// at `last` falls behind.
    fn deadline(&self, start: Instant, last: Instant, bytes: u64) -> Instant {
        let allowed = Duration::from_secs_f64(bytes as f64 / self.min_rate.max(1) as f64);
        let by_rate = start + self.grace + allowed.min(Duration::from_secs(100 * 365 * 86400));
        match self.idle {
            Some(idle) => by_rate.min(last + idle),
            None => by_rate,
        }
    }
}

/// A body stream held to a [`Pace`].
pub struct Paced<S> {
    inner: Pin<Box<S>>,
    pace: Pace,
    start: Instant,
    last: Instant,
    bytes: u64,
    sleep: Pin<Box<Sleep>>,
    done: bool,
}

impl<S> Paced<S> {
    /// `inner`, held to `pace` from now.
    pub fn new(inner: S, pace: Pace) -> Self {
        let now = Instant::now();
        Paced {
            inner: Box::pin(inner),
            pace,
            start: now,
            last: now,
            bytes: 0,
            sleep: Box::pin(tokio::time::sleep_until(pace.deadline(now, now, 0))),
            done: false,
        }
    }

    fn behind(&mut self, now: Instant) -> std::io::Error {
        self.done = true;
        let message = if let Some(idle) = self.pace.idle
            && now >= self.last + idle
        {
            format!(
                "blob transfer stalled: no byte moved for {} s (serve --stall-timeout-s)",
                idle.as_secs_f64()
            )
        } else {
            format!(
                "blob transfer too slow: {} bytes in {} s, under the {} bytes/s this coordinator requires (serve --min-transfer-kib-s)",
                self.bytes,
                now.duration_since(self.start).as_secs(),
                self.pace.min_rate
            )
        };
        std::io::Error::new(std::io::ErrorKind::TimedOut, message)
    }
}

impl<S, E> Stream for Paced<S>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let now = Instant::now();
        if now >= this.pace.deadline(this.start, this.last, this.bytes) {
            return Poll::Ready(Some(Err(this.behind(now))));
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.bytes += chunk.len() as u64;
                if !chunk.is_empty() {
                    this.last = now;
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let deadline = this.pace.deadline(this.start, this.last, this.bytes);
                if this.sleep.deadline() != deadline {
                    this.sleep.as_mut().reset(deadline);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(this.behind(Instant::now())))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_is_cut_after_the_stall_time() {
        let pace = Pace {
            idle: Some(Duration::from_secs(60)),
            grace: Duration::from_secs(60),
            min_rate: 1,
        };
        let body =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"abc"))])
                .chain(futures_util::stream::pending());
        let mut paced = Paced::new(body, pace);
        assert_eq!(&paced.next().await.unwrap().unwrap()[..], b"abc");
        let error = paced.next().await.unwrap().unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(
            error
                .to_string()
                .contains("stalled: no byte moved for 60 s"),
            "{error}"
        );
        assert!(paced.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_under_the_minimum_rate_is_cut() {
        let pace = Pace {
            idle: Some(Duration::from_secs(10)),
            grace: Duration::from_secs(10),
            min_rate: 1000,
        };
        // One byte every 5 s never stalls, but averages 0.2 bytes/s.
        let body = futures_util::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), ()))
        });
        let mut paced = Paced::new(body, pace);
        let mut received = 0;
        let error = loop {
            match paced.next().await.unwrap() {
                Ok(chunk) => received += chunk.len(),
                Err(e) => break e,
            }
        };
        assert!(received >= 1, "some bytes passed before the cut");
        assert!(error.to_string().contains("too slow"), "{error}");
    }
}
