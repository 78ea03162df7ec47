//! Where [`Job`](crate::Job)'s host services come from: the real host
//! imports inside a component, or a [`TestHost`](crate::testing::TestHost).

use std::path::Path;
use std::sync::Arc;

use crate::error::JobError;
use crate::testing::TestState;

pub(crate) enum Backend {
    /// The host's WIT imports (only inside a wasm component).
    #[cfg(target_arch = "wasm32")]
    Wasm,
    /// In-process services for native tests.
    Test(Arc<TestState>),
}

impl Backend {
    pub(crate) fn input_dir(&self) -> &Path {
        match self {
            #[cfg(target_arch = "wasm32")]
            Backend::Wasm => Path::new("/input"),
            Backend::Test(state) => &state.input_dir,
        }
    }

    pub(crate) fn output_dir(&self) -> &Path {
        match self {
            #[cfg(target_arch = "wasm32")]
            Backend::Wasm => Path::new("/output"),
            Backend::Test(state) => &state.output_dir,
        }
    }

    pub(crate) fn report(&self, fraction: f32, message: &str) {
        match self {
            #[cfg(target_arch = "wasm32")]
            Backend::Wasm => crate::__private::progress::report(fraction, message),
            Backend::Test(state) => state.report(fraction, message),
        }
    }

    pub(crate) fn cancelled(&self) -> bool {
        match self {
            #[cfg(target_arch = "wasm32")]
            Backend::Wasm => crate::__private::progress::cancelled(),
            Backend::Test(state) => state.cancelled(),
        }
    }

    pub(crate) fn save_checkpoint(&self, data: &[u8]) -> Result<(), JobError> {
        match self {
            #[cfg(target_arch = "wasm32")]
            Backend::Wasm => crate::__private::save_checkpoint(data),
            Backend::Test(state) => state.save_checkpoint(data),
        }
    }

    pub(crate) fn load_checkpoint(&self) -> Option<Vec<u8>> {
        match self {
            #[cfg(target_arch = "wasm32")]
            Backend::Wasm => crate::__private::checkpoint::load(),
            Backend::Test(state) => state.load_checkpoint(),
        }
    }
}
