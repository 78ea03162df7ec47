//! The edge shared by the `pictor-host` and `pictor-coordinator` binaries:
//! [`logging`] (stderr, `PICTOR_LOG`, text or JSON) and [`wait_for_signal`]
//! (Ctrl-C or SIGTERM), so both behave the same to an operator.

pub mod logging;

/// Waits for Ctrl-C or (on Unix) SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
