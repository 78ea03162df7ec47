//! Jobs: the spec a job arrives as, its limits, its sandbox folders, and
//! running it to an outcome.

pub mod limits;
pub mod outcome;
pub mod runner;
pub mod sandbox;
pub mod spec;
pub mod tree;
