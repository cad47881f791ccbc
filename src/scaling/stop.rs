//! Why a run stops starting new namespaces: SIGTERM/SIGINT, or the loss of its Lease (taken over
//! by another run, or not renewed before it expired). Either way the namespaces in flight finish
//! or roll back, the audit is written, and the run exits 1.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

const RUNNING: u8 = 0;
const SIGNALLED: u8 = 1;
const LEASE_LOST: u8 = 2;

#[derive(Debug, Default)]
pub struct Stop(AtomicU8);

impl Stop {
    pub fn new() -> Arc<Stop> {
        Arc::new(Stop::default())
    }

    /// Installs the SIGTERM/SIGINT handler on the current tokio runtime: the earlier this is
    /// called the better (a signal before it would end the process at once, like SIGKILL).
    pub fn install_signal_handler(self: &Arc<Self>) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            // Registered now, synchronously; only the waiting happens in the task.
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                tracing::warn!("could not install the signal handler");
                return;
            };
            let stop = self.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                tracing::warn!("signal received: no new namespaces will be started; finishing the ones in flight");
                stop.set(SIGNALLED);
            });
        }
    }

    /// The Lease is no longer ours: stop like on SIGTERM.
    pub fn lease_lost(&self) {
        self.set(LEASE_LOST);
    }

    fn set(&self, why: u8) {
        // The first reason wins.
        let _ = self
            .0
            .compare_exchange(RUNNING, why, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst) != RUNNING
    }

    pub fn is_lease_lost(&self) -> bool {
        self.0.load(Ordering::SeqCst) == LEASE_LOST
    }

    pub fn reason(&self) -> &'static str {
        match self.0.load(Ordering::SeqCst) {
            SIGNALLED => "the run was asked to stop (signal)",
            LEASE_LOST => "the run lost its Lease (taken over, or not renewed in time)",
            _ => "running",
        }
    }
}
