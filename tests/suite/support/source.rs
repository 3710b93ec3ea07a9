//! A fake data source: a version number that writes bump, a count of the
//! reads that reached it, and a gate that holds the next read after it has
//! read the version, until the test releases it. This is how the tests
//! schedule a fill against an invalidation without sleeping.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Holds the next read that passes it, until released.
#[derive(Clone, Default)]
pub struct Gate(Arc<Mutex<Option<Hold>>>);

#[derive(Clone)]
struct Hold {
    reached: Arc<Notify>,
    release: Arc<Notify>,
    /// Panic once released.
    panic: bool,
}

impl Gate {
    /// Holds the next read that passes; returns (reached, release): the
    /// read notifies the first and waits for the second. With `panic`, the
    /// held read panics once released.
    pub fn hold_next(&self, panic: bool) -> (Arc<Notify>, Arc<Notify>) {
        let hold = Hold {
            reached: Arc::new(Notify::new()),
            release: Arc::new(Notify::new()),
            panic,
        };
        let pair = (hold.reached.clone(), hold.release.clone());
        *self.0.lock().unwrap() = Some(hold);
        pair
    }

    /// Called by a read after it has read: waits there if held.
    pub async fn pass(&self) {
        let hold = self.0.lock().unwrap().take();
        if let Some(hold) = hold {
            hold.reached.notify_one();
            hold.release.notified().await;
            if hold.panic {
                panic!("the body failed");
            }
        }
    }
}

/// One value and its version.
#[derive(Clone, Default)]
pub struct Source {
    pub version: Arc<AtomicU64>,
    runs: Arc<AtomicU64>,
    pub gate: Gate,
}

impl Source {
    /// See [`Gate::hold_next`].
    pub fn hold_next(&self, panic: bool) -> (Arc<Notify>, Arc<Notify>) {
        self.gate.hold_next(panic)
    }

    /// A read: the current version (held after reading it, if a gate is
    /// set).
    pub async fn read(&self) -> u64 {
        self.runs.fetch_add(1, SeqCst);
        let version = self.version.load(SeqCst);
        self.gate.pass().await;
        version
    }

    /// How many reads reached the source.
    pub fn runs(&self) -> u64 {
        self.runs.load(SeqCst)
    }
}
