//! What a running sync tells the app, and how the app stops it.
//!
//! A sync reports after every round trip and every attachment chunk, and checks for
//! cancellation before each of them and while one is on the wire. Stopping at any of those
//! points is safe: a device forgets nothing the server has not acknowledged, and the server
//! ignores changes it already has, so the next sync simply picks up where this one stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Where a sync is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPhase {
    /// Exchanging record changes.
    Records,
    /// Sending photos and files.
    Uploading,
    /// Fetching photos and files other phones attached.
    Downloading,
    /// Finished.
    Done,
}

/// A snapshot of a running sync, for a progress bar.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncProgress {
    pub phase: SyncPhase,
    pub round_trips: u32,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Records the server has committed so far in this sync.
    pub records_accepted: u32,
    /// Records received from the server so far.
    pub records_pulled: u32,
    pub chunks_uploaded: u32,
    pub chunks_downloaded: u32,
}

/// A handle that stops a sync at its next safe point. Clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Asks the sync to stop; it returns `DeviceError::Cancelled` soon after.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// Resolves once `cancel` has been called.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so a `cancel` in between is not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_task_wakes_when_cancelled_from_another_thread() {
        let token = CancelToken::new();
        let waiter = tokio::spawn({
            let token = token.clone();
            async move { token.cancelled().await }
        });
        assert!(!token.is_cancelled());
        std::thread::spawn(move || token.cancel()).join().expect("thread");
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.expect("woke").expect("joined");
    }
}
