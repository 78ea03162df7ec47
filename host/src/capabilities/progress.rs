//! `pictor:plugin/progress`: progress reports and cooperative cancellation.

use std::sync::Arc;

use tokio::sync::watch;
use wasmtime::component::{HasData, Linker};

use crate::runtime::bindings::pictor::plugin::progress::{self, Host};
use crate::runtime::control::JobControl;
use crate::runtime::store::StoreState;

/// Longest progress message kept, in characters.
const MAX_MESSAGE_CHARS: usize = 200;

/// A job's latest progress report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Fraction done, in [0, 1].
    pub fraction: f32,
    /// The plugin's short message.
    pub message: String,
}

/// Per-job state of the progress capability.
pub struct ProgressState {
    control: Arc<JobControl>,
    updates: watch::Sender<Progress>,
}

impl ProgressState {
    /// State that publishes reports on `updates` and answers `cancelled`
    /// from `control`.
    pub fn new(control: Arc<JobControl>, updates: watch::Sender<Progress>) -> Self {
        ProgressState { control, updates }
    }
}

impl Host for ProgressState {
    fn report(&mut self, fraction: f32, message: String) -> wasmtime::Result<()> {
        if fraction.is_nan() {
            return Ok(());
        }
        let message: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
        let fraction = fraction.clamp(0.0, 1.0);
        tracing::debug!(fraction, %message, "progress");
        self.updates.send_replace(Progress { fraction, message });
        Ok(())
    }

    fn cancelled(&mut self) -> wasmtime::Result<bool> {
        Ok(self.control.cancel_requested())
    }
}

struct HasProgress;

impl HasData for HasProgress {
    type Data<'a> = &'a mut ProgressState;
}

/// Links `pictor:plugin/progress` into `linker`.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    progress::add_to_linker::<StoreState, HasProgress>(linker, |state| &mut state.progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_truncates_and_ignores_nan() -> wasmtime::Result<()> {
        let control = Arc::new(JobControl::default());
        let (tx, rx) = watch::channel(Progress::default());
        let mut state = ProgressState::new(control.clone(), tx);
        state.report(1.5, "x".repeat(1000))?;
        assert_eq!(rx.borrow().fraction, 1.0);
        assert_eq!(rx.borrow().message.len(), MAX_MESSAGE_CHARS);
        state.report(f32::NAN, "ignored".into())?;
        assert_eq!(rx.borrow().fraction, 1.0);
        assert!(!state.cancelled()?);
        control.request_cancel();
        assert!(state.cancelled()?);
        Ok(())
    }
}
