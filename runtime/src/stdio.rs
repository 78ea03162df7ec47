//! Capture of a plugin's stdout and stderr into the host's log.
//!
//! Each complete line becomes a `tracing` event (target `plugin`), up to a
//! byte cap per stream; past the cap output is counted and dropped, never
//! an error for the guest. The last few KiB of stderr are kept so a failed
//! job's error can quote what the plugin printed (a Rust panic message, say).

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// How much of the end of stderr is kept for error messages.
const TAIL_BYTES: usize = 4 << 10;

/// Which stream a capture is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamName {
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
}

/// One captured stream: give a clone to the WASI context, read it afterwards.
#[derive(Clone)]
pub struct CapturedOutput {
    inner: Arc<Mutex<Capture>>,
}

struct Capture {
    name: StreamName,
    job_id: String,
    cap: u64,
    seen: u64,
    partial: Vec<u8>,
    tail: Vec<u8>,
}

impl CapturedOutput {
    /// A capture of `name` for job `job_id`, logging at most `cap` bytes.
    pub fn new(name: StreamName, job_id: &str, cap: u64) -> Self {
        CapturedOutput {
            inner: Arc::new(Mutex::new(Capture {
                name,
                job_id: job_id.to_string(),
                cap,
                seen: 0,
                partial: Vec::new(),
                tail: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Capture> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes the guest wrote in all (including those dropped past the cap).
    pub fn bytes_written(&self) -> u64 {
        self.lock().seen
    }

    /// The last few KiB written, lossily decoded, trimmed.
    pub fn tail(&self) -> String {
        String::from_utf8_lossy(&self.lock().tail)
            .trim()
            .to_string()
    }

    /// Logs a trailing partial line, and a note if output was dropped.
    pub fn finish(&self) {
        let mut capture = self.lock();
        let partial = std::mem::take(&mut capture.partial);
        if !partial.is_empty() {
            capture.log_line(&partial);
        }
        if capture.seen > capture.cap {
            tracing::warn!(
                target: "plugin",
                job = %capture.job_id,
                stream = ?capture.name,
                dropped_bytes = capture.seen - capture.cap,
                "plugin output over the {}-byte log cap was dropped",
                capture.cap
            );
        }
    }
}

impl Capture {
    fn write(&mut self, data: &[u8]) {
        let logged_before = self.seen.min(self.cap);
        self.seen = self.seen.saturating_add(data.len() as u64);
        let keep = (self.seen.min(self.cap) - logged_before) as usize;
        if self.name == StreamName::Stderr {
            self.tail.extend_from_slice(data);
            if self.tail.len() > TAIL_BYTES {
                let cut = self.tail.len() - TAIL_BYTES;
                self.tail.drain(..cut);
            }
        }
        let mut rest = &data[..keep];
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&rest[..newline]);
            self.log_line(&line);
            rest = &rest[newline + 1..];
        }
        self.partial.extend_from_slice(rest);
        // A line that never ends is flushed in pieces to bound memory.
        if self.partial.len() > TAIL_BYTES {
            let line = std::mem::take(&mut self.partial);
            self.log_line(&line);
        }
    }

    fn log_line(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text =
            crate::text::one_line(text.trim_end_matches('\r'), crate::text::MAX_LOG_LINE_BYTES);
        match self.name {
            StreamName::Stdout => tracing::info!(target: "plugin", job = %self.job_id, "{text}"),
            StreamName::Stderr => tracing::warn!(target: "plugin", job = %self.job_id, "{text}"),
        }
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    /// A stream that captures each write at once. wasmtime-wasi's default
    /// (`AsyncWriteStream`) queues writes for a background task, and before
    /// 48.0.9 queued empty writes without bound (GHSA-5m8g-xhq4-4h93).
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(CaptureStream(self.clone()))
    }
}

/// How much a guest may write to stdout or stderr in one call.
const STREAM_PERMIT: usize = 64 << 10;

/// The WASI output stream of a capture: never blocks, never queues.
struct CaptureStream(CapturedOutput);

#[wasmtime_wasi_io::async_trait]
impl wasmtime_wasi::p2::Pollable for CaptureStream {
    async fn ready(&mut self) {}
}

impl wasmtime_wasi::p2::OutputStream for CaptureStream {
    fn write(
        &mut self,
        bytes: wasmtime_wasi_io::bytes::Bytes,
    ) -> wasmtime_wasi::p2::StreamResult<()> {
        if bytes.len() > STREAM_PERMIT {
            return Err(wasmtime_wasi::p2::StreamError::trap(
                "write is larger than check-write permitted",
            ));
        }
        self.0.lock().write(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> wasmtime_wasi::p2::StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> wasmtime_wasi::p2::StreamResult<usize> {
        Ok(STREAM_PERMIT)
    }
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.lock().write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_logged_bytes_and_keeps_the_stderr_tail() {
        let out = CapturedOutput::new(StreamName::Stderr, "j", 10);
        let mut capture = out.lock();
        capture.write(b"hello\nworld, this is long\n");
        capture.write(b"panicked at src/lib.rs:1: boom\n");
        drop(capture);
        assert_eq!(out.bytes_written(), 57);
        assert!(out.tail().ends_with("panicked at src/lib.rs:1: boom"));
        // Only the first 10 bytes were logged: "hello" and the partial "worl".
        assert_eq!(out.lock().partial, b"worl");
    }

    #[test]
    fn one_write_larger_than_the_permit_traps_and_is_not_captured() {
        use wasmtime_wasi::p2::OutputStream;
        let out = CapturedOutput::new(StreamName::Stdout, "j", 1 << 20);
        let mut stream = CaptureStream(out.clone());
        assert!(matches!(stream.check_write(), Ok(STREAM_PERMIT)));
        let permitted = wasmtime_wasi_io::bytes::Bytes::from(vec![b'a'; STREAM_PERMIT]);
        assert!(stream.write(permitted).is_ok());
        let larger = wasmtime_wasi_io::bytes::Bytes::from(vec![b'b'; STREAM_PERMIT + 1]);
        match stream.write(larger) {
            Err(wasmtime_wasi::p2::StreamError::Trap(e)) => {
                assert!(e.to_string().contains("check-write"), "{e}");
            }
            other => panic!("a write past the permit must trap, got {other:?}"),
        }
        assert_eq!(out.bytes_written(), STREAM_PERMIT as u64);
    }
}
