//! Host side of each `pictor:plugin` WIT interface, in wasmtime's
//! `wasi-config` shape: each capability has its interface's generated
//! module (in [`bindings`](crate::bindings)), a state struct kept in the
//! job's store, a view the generated `Host` trait is implemented on (the
//! state itself where that is all it needs), and
//! `add_to_linker<T>(linker, getter)` generic over the store's data. None
//! of them names the concrete [`StoreState`](crate::store::StoreState):
//! [`linker`](crate::linker) hands each one its getter.
//!
//! `filesystem` guards `wasi:filesystem` (the output quota) and `sockets`
//! is the miner's `wasi:sockets` grant: host sides of WASI, not of our WIT.

pub mod checkpoint;
pub mod filesystem;
pub mod gpu;
pub mod mining;
pub mod progress;
pub mod sockets;
