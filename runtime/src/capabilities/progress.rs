//! `pictor:plugin/progress`: progress reports and cooperative cancellation.

use std::sync::Arc;

use tokio::sync::watch;
use wasmtime::StoreContextMut;
use wasmtime::component::{HasData, Linker, WasmStr};

use crate::bindings::pictor::plugin::progress::{self, Host};
use crate::control::JobControl;
use crate::text;

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

impl ProgressState {
    /// Publishes a report whose message is already clean and clipped.
    fn publish(&mut self, fraction: f32, message: String) {
        if fraction.is_nan() {
            return;
        }
        let fraction = fraction.clamp(0.0, 1.0);
        tracing::debug!(fraction, %message, "progress");
        self.updates.send_replace(Progress { fraction, message });
    }
}

impl Host for ProgressState {
    /// Not called by guests ([`report_borrowed`] is linked in its place).
    fn report(&mut self, fraction: f32, message: String) -> wasmtime::Result<()> {
        self.publish(fraction, text::one_line(&message, text::MAX_PROGRESS_BYTES));
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

/// The interface's name as components import it.
pub const INTERFACE: &str = "pictor:plugin/progress@0.2.0";

/// Links `pictor:plugin/progress` into `linker`, reaching the job's state
/// through `getter`; `report` reads the message where it lies in guest
/// memory and keeps only its clipped, escaped start (a 100 MB message is
/// never copied).
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    getter: fn(&mut T) -> &mut ProgressState,
) -> wasmtime::Result<()> {
    progress::add_to_linker::<T, HasProgress>(linker, getter)?;
    linker.allow_shadowing(true);
    let linked = linker.instance(INTERFACE).and_then(|mut progress| {
        progress.func_wrap(
            "report",
            move |mut store: StoreContextMut<'_, T>, (fraction, message): (f32, WasmStr)| {
                // `progress.report` without copying the message out of guest memory.
                let message = text::one_line(&message.to_str(&store)?, text::MAX_PROGRESS_BYTES);
                getter(store.data_mut()).publish(fraction, message);
                Ok(())
            },
        )
    });
    linker.allow_shadowing(false);
    linked
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
        assert!(
            rx.borrow()
                .message
                .starts_with(&"x".repeat(text::MAX_PROGRESS_BYTES - 40))
        );
        assert!(rx.borrow().message.len() <= text::MAX_PROGRESS_BYTES + 40);
        state.report(f32::NAN, "ignored".into())?;
        assert_eq!(rx.borrow().fraction, 1.0);
        assert!(!state.cancelled()?);
        control.request_cancel();
        assert!(state.cancelled()?);
        Ok(())
    }
}
