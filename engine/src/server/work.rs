//! Work the HTTP handlers run on blocking threads, tied to its request: when the request goes
//! (the timeout layer's 503, a client that disconnects) or the shutdown grace period is over,
//! the work is told to stop. Blocking threads cannot be aborted from outside; the ingest
//! pipeline asks [`Progress::cancelled`] before each document, embedding batch and write.

use crate::ingest::{Cancel, Progress};

/// Every request's work, with the one switch that stops all of it at shutdown.
#[derive(Debug, Default)]
pub struct WorkRegistry {
    shutdown: Cancel,
}

impl WorkRegistry {
    /// Work for one request; it is cancelled when the returned guard drops.
    pub fn start(&self) -> RequestWork {
        RequestWork {
            request: Cancel::default(),
            shutdown: self.shutdown.clone(),
        }
    }

    /// Stops all running work (the grace period is over).
    pub fn cancel_all(&self) {
        self.shutdown.cancel();
    }
}

/// Cancels its request's work when dropped (with the handler's future, or after the work ended).
#[derive(Debug)]
pub struct RequestWork {
    request: Cancel,
    shutdown: Cancel,
}

impl RequestWork {
    /// The progress sink the work polls for cancellation.
    pub fn progress(&self) -> RequestProgress {
        RequestProgress {
            request: self.request.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

impl Drop for RequestWork {
    fn drop(&mut self) {
        self.request.cancel();
    }
}

/// Reports cancellation once the request went or the server is past its grace period.
#[derive(Debug, Clone)]
pub struct RequestProgress {
    request: Cancel,
    shutdown: Cancel,
}

impl Progress for RequestProgress {
    fn cancelled(&self) -> bool {
        self.request.is_cancelled() || self.shutdown.is_cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_is_cancelled_when_its_request_goes_or_at_shutdown_but_not_before() {
        let registry = WorkRegistry::default();
        let first = registry.start();
        let second = registry.start();
        let (p1, p2) = (first.progress(), second.progress());
        assert!(!p1.cancelled() && !p2.cancelled());
        drop(first);
        assert!(p1.cancelled() && !p2.cancelled());
        registry.cancel_all();
        assert!(p2.cancelled());
        assert!(registry.start().progress().cancelled());
    }
}
