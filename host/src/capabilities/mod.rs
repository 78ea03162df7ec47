//! Host side of each `pictor:plugin` WIT interface. Each capability owns a
//! state struct kept in the job's store, implements the generated `Host`
//! trait on it, and links itself with its own `add_to_linker`.

pub mod checkpoint;
pub mod gpu;
pub mod progress;
