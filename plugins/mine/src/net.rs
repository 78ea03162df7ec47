//! The pool connection: lines of text over one TCP socket.
//!
//! Inside the component it uses `wasi:sockets/tcp` directly (Rust's
//! `std::net` does not link on this toolchain); the host lets it reach the
//! pool's addresses only. Natively (plugin tests) it uses `std::net`.
//! Waiting for data is bounded (`read_lines(wait)`), so the miner comes
//! back to its GPU work, its stats and the host's cancel flag often.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Longest line accepted from the pool; a longer one is a protocol error
/// (memory stays bounded whatever the pool sends).
pub const MAX_LINE: usize = 64 * 1024;

/// Why the connection failed.
#[derive(Debug, Clone, PartialEq)]
pub enum NetError {
    /// Connecting did not succeed (refused, unreachable, not permitted by
    /// the host, timed out).
    Connect(String),
    /// The pool closed the connection.
    Closed,
    /// Reading or writing failed.
    Io(String),
    /// The pool sent a line longer than [`MAX_LINE`].
    LineTooLong,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Connect(e) => write!(f, "cannot connect: {e}"),
            NetError::Closed => write!(f, "the pool closed the connection"),
            NetError::Io(e) => write!(f, "connection error: {e}"),
            NetError::LineTooLong => write!(f, "the pool sent a line over {MAX_LINE} bytes"),
        }
    }
}

/// Splits complete lines off the front of `buffer`.
fn take_lines(buffer: &mut Vec<u8>) -> Result<Vec<String>, NetError> {
    let mut lines = Vec::new();
    while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = buffer.drain(..=end).collect();
        let text = String::from_utf8_lossy(&line).trim().to_string();
        if !text.is_empty() {
            lines.push(text);
        }
    }
    if buffer.len() > MAX_LINE {
        return Err(NetError::LineTooLong);
    }
    Ok(lines)
}

/// Sleeps `duration` (a host call: the host can stop the miner meanwhile).
pub fn sleep(duration: Duration) {
    #[cfg(target_arch = "wasm32")]
    wasip2::clocks::monotonic_clock::subscribe_duration(
        duration.as_nanos().min(u128::from(u64::MAX)) as u64,
    )
    .block();
    #[cfg(not(target_arch = "wasm32"))]
    std::thread::sleep(duration);
}

#[cfg(target_arch = "wasm32")]
pub use wasi_tcp::Connection;

#[cfg(not(target_arch = "wasm32"))]
pub use std_tcp::Connection;

#[cfg(target_arch = "wasm32")]
mod wasi_tcp {
    use super::*;
    use wasip2::clocks::monotonic_clock::subscribe_duration;
    use wasip2::io::poll::poll;
    use wasip2::io::streams::{InputStream, OutputStream, StreamError};
    use wasip2::sockets::instance_network::instance_network;
    use wasip2::sockets::network::{
        ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
    };
    use wasip2::sockets::tcp::TcpSocket;
    use wasip2::sockets::tcp_create_socket::create_tcp_socket;

    /// A TCP connection to the pool. Field order is drop order: the
    /// streams go before the socket they belong to.
    pub struct Connection {
        input: InputStream,
        output: OutputStream,
        _socket: TcpSocket,
        buffer: Vec<u8>,
        /// How the input ended, reported once the lines before it are read.
        ended: Option<NetError>,
    }

    fn nanos(d: Duration) -> u64 {
        d.as_nanos().min(u128::from(u64::MAX)) as u64
    }

    fn wasi_address(addr: SocketAddr) -> (IpAddressFamily, IpSocketAddress) {
        match addr {
            SocketAddr::V4(a) => {
                let [a0, a1, a2, a3] = a.ip().octets();
                (
                    IpAddressFamily::Ipv4,
                    IpSocketAddress::Ipv4(Ipv4SocketAddress {
                        port: a.port(),
                        address: (a0, a1, a2, a3),
                    }),
                )
            }
            SocketAddr::V6(a) => {
                let s = a.ip().segments();
                let address = (s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
                let v6 = Ipv6SocketAddress {
                    port: a.port(),
                    flow_info: a.flowinfo(),
                    address,
                    scope_id: a.scope_id(),
                };
                (IpAddressFamily::Ipv6, IpSocketAddress::Ipv6(v6))
            }
        }
    }

    fn describe(e: ErrorCode) -> String {
        match e {
            ErrorCode::AccessDenied => {
                "access denied (the host grants only the configured pool)".into()
            }
            ErrorCode::ConnectionRefused => "connection refused".into(),
            ErrorCode::Timeout => "timed out".into(),
            ErrorCode::RemoteUnreachable => "unreachable".into(),
            other => format!("{other:?}").to_lowercase(),
        }
    }

    fn stream_error(e: StreamError) -> NetError {
        match e {
            StreamError::Closed => NetError::Closed,
            StreamError::LastOperationFailed(e) => NetError::Io(e.to_debug_string()),
        }
    }

    impl Connection {
        /// Connects to `addr`, giving up after `timeout`.
        pub fn open(addr: SocketAddr, timeout: Duration) -> Result<Self, NetError> {
            let network = instance_network();
            let (family, address) = wasi_address(addr);
            let socket = create_tcp_socket(family).map_err(|e| NetError::Connect(describe(e)))?;
            socket
                .start_connect(&network, address)
                .map_err(|e| NetError::Connect(describe(e)))?;
            let (input, output) = {
                let ready = socket.subscribe();
                let timer = subscribe_duration(nanos(timeout));
                loop {
                    match socket.finish_connect() {
                        Ok(streams) => break streams,
                        Err(ErrorCode::WouldBlock) => {
                            if poll(&[&ready, &timer]) == [1] {
                                return Err(NetError::Connect(format!(
                                    "timed out after {} s",
                                    timeout.as_secs_f64()
                                )));
                            }
                        }
                        Err(e) => return Err(NetError::Connect(describe(e))),
                    }
                }
            };
            // A pool that vanishes without a FIN is noticed by keep-alives.
            let _ = socket.set_keep_alive_enabled(true);
            Ok(Connection {
                input,
                output,
                _socket: socket,
                buffer: Vec::new(),
                ended: None,
            })
        }

        /// Sends `line` and a newline.
        pub fn send_line(&mut self, line: &str) -> Result<(), NetError> {
            let mut bytes = Vec::with_capacity(line.len() + 1);
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            // blocking-write-and-flush takes at most 4096 bytes a call.
            for chunk in bytes.chunks(4096) {
                self.output
                    .blocking_write_and_flush(chunk)
                    .map_err(stream_error)?;
            }
            Ok(())
        }

        /// The complete lines received so far; when there are none, waits
        /// up to `wait` for data first.
        pub fn read_lines(&mut self, wait: Duration) -> Result<Vec<String>, NetError> {
            self.drain();
            let lines = take_lines(&mut self.buffer)?;
            if !lines.is_empty() {
                return Ok(lines);
            }
            if let Some(e) = &self.ended {
                return Err(e.clone());
            }
            if wait.is_zero() {
                return Ok(lines);
            }
            {
                let ready = self.input.subscribe();
                let timer = subscribe_duration(nanos(wait));
                poll(&[&ready, &timer]);
            }
            self.drain();
            let lines = take_lines(&mut self.buffer)?;
            match &self.ended {
                Some(e) if lines.is_empty() => Err(e.clone()),
                _ => Ok(lines),
            }
        }

        /// Reads whatever is available without blocking; an end of the
        /// stream is kept in `ended`.
        fn drain(&mut self) {
            while self.ended.is_none() && self.buffer.len() <= 4 * MAX_LINE {
                match self.input.read(16 * 1024) {
                    Ok(bytes) if bytes.is_empty() => return,
                    Ok(bytes) => self.buffer.extend_from_slice(&bytes),
                    Err(e) => self.ended = Some(stream_error(e)),
                }
            }
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod std_tcp {
    use super::*;
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;

    /// A TCP connection to the pool (native builds: plugin tests).
    pub struct Connection {
        stream: TcpStream,
        buffer: Vec<u8>,
        /// How the input ended, reported once the lines before it are read.
        ended: Option<NetError>,
    }

    impl Connection {
        /// Connects to `addr`, giving up after `timeout`.
        pub fn open(addr: SocketAddr, timeout: Duration) -> Result<Self, NetError> {
            let stream = TcpStream::connect_timeout(&addr, timeout)
                .map_err(|e| NetError::Connect(e.to_string()))?;
            let _ = stream.set_nodelay(true);
            Ok(Connection {
                stream,
                buffer: Vec::new(),
                ended: None,
            })
        }

        /// Sends `line` and a newline.
        pub fn send_line(&mut self, line: &str) -> Result<(), NetError> {
            let io = |e: std::io::Error| NetError::Io(e.to_string());
            self.stream.set_nonblocking(false).map_err(io)?;
            self.stream
                .write_all(format!("{line}\n").as_bytes())
                .map_err(io)
        }

        /// The complete lines received so far; when there are none, waits
        /// up to `wait` for data first.
        pub fn read_lines(&mut self, wait: Duration) -> Result<Vec<String>, NetError> {
            let io = |e: std::io::Error| NetError::Io(e.to_string());
            self.stream.set_nonblocking(true).map_err(io)?;
            self.fill();
            let lines = take_lines(&mut self.buffer)?;
            if !lines.is_empty() {
                return Ok(lines);
            }
            if let Some(e) = &self.ended {
                return Err(e.clone());
            }
            if wait.is_zero() {
                return Ok(lines);
            }
            self.stream.set_nonblocking(false).map_err(io)?;
            self.stream.set_read_timeout(Some(wait)).map_err(io)?;
            self.fill_once();
            self.stream.set_nonblocking(true).map_err(io)?;
            self.fill();
            let lines = take_lines(&mut self.buffer)?;
            match &self.ended {
                Some(e) if lines.is_empty() => Err(e.clone()),
                _ => Ok(lines),
            }
        }

        fn fill(&mut self) {
            while self.fill_once() {}
        }

        /// One read; false when nothing more is to be had now.
        fn fill_once(&mut self) -> bool {
            if self.ended.is_some() || self.buffer.len() > 4 * MAX_LINE {
                return false;
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.ended = Some(NetError::Closed),
                Ok(n) => {
                    self.buffer.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => self.ended = Some(NetError::Io(e.to_string())),
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_trimmed_and_bounded() {
        let mut buffer = b"{\"a\":1}\r\n\n{\"b\"".to_vec();
        assert_eq!(
            take_lines(&mut buffer).unwrap(),
            vec!["{\"a\":1}".to_string()]
        );
        assert_eq!(buffer, b"{\"b\"");
        let mut long = vec![b'x'; MAX_LINE + 1];
        assert_eq!(take_lines(&mut long), Err(NetError::LineTooLong));
    }
}
