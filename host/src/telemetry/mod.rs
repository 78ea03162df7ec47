//! What the host knows about its GPUs' health, for the owner's status and
//! for decisions such as mining eligibility.

pub mod nvml;
