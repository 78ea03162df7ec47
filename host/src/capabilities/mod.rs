//! Host side of each `pictor:plugin` WIT interface. Each capability owns a
//! state struct kept in the job's store, implements the generated `Host`
//! trait on it, and links itself with its own `add_to_linker`.
//! `sockets` is the host side of `wasi:sockets` for miners (a grant, not a
//! WIT interface of ours).

pub mod checkpoint;
pub mod filesystem;
pub mod gpu;
pub mod mining;
pub mod progress;
pub mod sockets;
