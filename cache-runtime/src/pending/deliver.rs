//! The delivery task of a pending set: one at a time per set (its
//! [`Claim`]), on cachette's own runtime, sending the set's work a chunk at
//! a time with backoff until nothing is left (I9).

use std::future::Future;
use std::time::Duration;

use super::{After, Claim, Work};
use crate::error::Error;

/// What sends a pending set's work to the server: a cache that shares the
/// set (`invalidate.rs`).
pub(crate) trait Courier: Send + Sync + 'static {
    /// Sends `work` once.
    fn deliver(&self, work: &Work) -> impl Future<Output = Result<(), Error>> + Send;
}

/// How long past its planned wait a delivery task may go silent before
/// another is started: room for one bust and a busy runtime.
const RETRY_SLACK: Duration = Duration::from_secs(5);

/// When a delivery task sends next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pace {
    /// A chunk was just delivered: the next goes at once.
    AtOnce,
    /// With backoff, after this many failed attempts in a row.
    Backoff(u32),
}

impl Pace {
    /// The wait before the next attempt.
    fn wait(self) -> Duration {
        match self {
            Pace::AtOnce => Duration::ZERO,
            Pace::Backoff(failed) => backoff(failed),
        }
    }

    /// The pace after an attempt failed.
    fn failed(self) -> Pace {
        match self {
            Pace::AtOnce => Pace::Backoff(0),
            Pace::Backoff(failed) => Pace::Backoff(failed.saturating_add(1)),
        }
    }
}

/// Backoff between delivery attempts: 10 ms doubling to 2 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(10u64.saturating_mul(1 << attempt.min(8))).min(Duration::from_secs(2))
}

/// Delivers the pending busts of `claim`'s set through `courier`, with
/// backoff, until none is left (I9), on cachette's own runtime
/// (`crate::background`): the caller's runtime may be dropped or never
/// driven again, and the busts must still go.
///
/// # Cancel safety
/// The claim moves into the task here: if the task is dropped before its
/// first poll (it could not run), dropping it gives the claim back, and a
/// later caller starts another.
pub(crate) fn spawn_delivery(claim: Claim, courier: impl Courier) {
    let pending = claim.pending.clone();
    let _ = crate::background::spawn(async move {
        let mut claim = claim;
        let mut pace = Pace::Backoff(0);
        loop {
            let wait = pace.wait();
            // Renewed before every wait, for the wait and a bust.
            if !pending.renew(&claim, wait + RETRY_SLACK) {
                return; // another task took over
            }
            tokio::time::sleep(wait).await;
            let (work, generation) = pending.snapshot();
            match courier.deliver(&work).await {
                Ok(()) => {
                    match &work {
                        Work::Names(bust) => tracing::info!(
                            names = bust.len(),
                            "cachette: pending invalidations delivered"
                        ),
                        Work::Everything => tracing::warn!(
                            "cachette: the namespace was invalidated as a whole (too many invalidations had been pending)"
                        ),
                    }
                    match pending.delivered(&work, generation, claim) {
                        (After::Done, _) => return,
                        (After::More, Some(kept)) => claim = kept,
                        (After::More, None) => unreachable!("kept while work is left"),
                    }
                    pace = Pace::AtOnce;
                }
                Err(e) => {
                    tracing::debug!(
                        error = %e,
                        ?pace,
                        task = claim.id(),
                        "cachette: pending invalidations still undelivered"
                    );
                    pace = pace.failed();
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pace the old `u32::MAX` sentinel stood for: at once after a
    /// delivery, back to the first backoff after a failure, doubling to 2 s.
    #[test]
    fn deliveries_go_at_once_and_failures_back_off() {
        assert_eq!(Pace::AtOnce.wait(), Duration::ZERO);
        assert_eq!(Pace::AtOnce.failed(), Pace::Backoff(0));
        assert_eq!(Pace::Backoff(0).wait(), Duration::from_millis(10));
        assert_eq!(Pace::Backoff(0).failed().wait(), Duration::from_millis(20));
        assert_eq!(Pace::Backoff(u32::MAX).failed(), Pace::Backoff(u32::MAX));
        assert_eq!(Pace::Backoff(30).wait(), Duration::from_secs(2));
    }
}
