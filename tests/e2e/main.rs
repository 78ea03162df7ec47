//! End-to-end tests: real components, built from source by
//! `scripts/build-plugins.sh` at the start of the run, driven through the
//! real `pictor-host` binary (and, for in-process checks, the library).

// A failed unwrap is how a test reports a broken step; product code keeps
// the workspace's `unwrap_used` lint.
#![allow(clippy::unwrap_used)]

mod ai;
mod browser;
mod config;
mod contained;
mod exec;
mod gpu;
mod gpu_in_process;
mod inspect;
mod languages;
mod mining;
mod network;
mod render;
mod reproducible;
mod sandbox;
mod status;
mod support;
mod worker;
mod worker_containment;
