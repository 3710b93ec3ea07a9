//! The in-process primitives checked under every interleaving of their
//! threads with loom (feature `__loom`; `shim.rs` swaps in loom's
//! primitives, and holds the weakenings). Each check comes with a
//! weakened variant of the primitive that loom must catch, so that a
//! check that could no longer fail is noticed.
//!
//! `cargo test -p cache-runtime --features __loom --lib loom`
//! (`./scripts/test.sh` runs it, bounded by `LOOM_MAX_PREEMPTIONS`).

#[cfg(test)]
mod tests {
    use crate::names::Bust;
    use crate::pending::Pending;
    use crate::shim::Weakening;

    fn bust(names: &[&str]) -> Bust {
        Bust::of(names, std::iter::empty::<&str>())
    }

    /// Runs `check` under loom with `weakening` on: `None` if every
    /// interleaving passes, else the failure's message.
    fn failure(weakening: Weakening, check: fn()) -> Option<String> {
        crate::shim::weaken(weakening);
        let outcome = std::panic::catch_unwind(|| loom::model(check));
        crate::shim::weaken(Weakening::None);
        let payload = outcome.err()?;
        Some(
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        )
    }

    /// Whether loom found an interleaving that fails `check` with
    /// `weakening` on; with a weakening, the failure must be the one
    /// expected (not a deadlock or another panic).
    fn fails(weakening: Weakening, check: fn()) -> bool {
        match failure(weakening, check) {
            None => false,
            Some(message) if weakening == Weakening::None => {
                panic!("{message}")
            }
            Some(message) => {
                let expected = match weakening {
                    Weakening::None => unreachable!(),
                    Weakening::MarkAfterUnlock => "is hidden from reads",
                    Weakening::ProbeKeptWhenDropped => "a dropped probe kept the breaker shut",
                    Weakening::KeepOvertaken => "an overtaken lookup was kept",
                    Weakening::EpochAfterUnlock => "the body ran twice",
                    Weakening::ProbesTakenBeforeClose => "its name is not read",
                    Weakening::UnsentBatchUnanswered => "a batch nobody sends",
                    Weakening::TornConfirmation => "the old confirmation with the new lease",
                    Weakening::RefreshCheckedThenSet => "two refreshes in flight",
                };
                assert!(
                    message.contains(expected),
                    "{weakening:?} failed otherwise than expected: {message}"
                );
                true
            }
        }
    }

    /// I9: a delivery that empties the pending set races a bust that
    /// fails and is kept. Whatever the interleaving, once both are done a
    /// set that holds the kept bust says so to reads (its flag), and a
    /// task can be started for it.
    fn a_kept_bust_is_never_hidden_by_a_delivery() {
        let pending = Pending::new(100);
        pending.add(&bust(&["a"]));
        let claim = pending.claim().expect("nothing delivers yet");
        let (work, generation) = pending.snapshot();
        let adder = pending.clone();
        let adds = loom::thread::spawn(move || adder.add(&bust(&["b"])));
        pending.delivered(&work, generation, claim);
        adds.join().unwrap();
        assert!(pending.holds_anything(), "`b` is kept");
        assert!(pending.any(), "`b` is hidden from reads");
    }

    /// I6: while the breaker is half-open, two calls race for the probe,
    /// and each drops its permit unanswered (cancelled). At most one
    /// probes at a time, and once both are gone the next call may probe:
    /// a cancelled probe never keeps the breaker open.
    fn one_probe_at_a_time_and_a_dropped_one_is_given_back() {
        use crate::breaker::Breaker;
        use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        use loom::sync::Arc;
        let breaker = Arc::new(Breaker::new(1, std::time::Duration::ZERO));
        let _ = breaker.failure();
        let probing = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (breaker, probing) = (breaker.clone(), probing.clone());
                loom::thread::spawn(move || {
                    if let Some(permit) = breaker.allow() {
                        assert_eq!(probing.fetch_add(1, SeqCst), 0, "two probes at once");
                        probing.fetch_sub(1, SeqCst);
                        drop(permit);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(
            breaker.allow().is_some(),
            "a dropped probe kept the breaker shut"
        );
    }

    #[test]
    fn loom_the_breaker_probes_once_and_gets_a_dropped_probe_back() {
        assert!(
            !fails(
                Weakening::None,
                one_probe_at_a_time_and_a_dropped_one_is_given_back
            ),
            "the breaker failed under loom"
        );
    }

    #[test]
    fn loom_catches_a_probe_kept_when_dropped() {
        assert!(
            fails(
                Weakening::ProbeKeptWhenDropped,
                one_probe_at_a_time_and_a_dropped_one_is_given_back
            ),
            "loom no longer catches the weakened breaker"
        );
    }

    /// I12: a lookup in flight (registered, then kept) races the
    /// invalidation message of one of its names, applied by the
    /// connection's read loop. The lookup is kept only if the message was
    /// applied before it registered; and one kept before the message is
    /// dropped for whoever holds it.
    #[cfg(feature = "redis")]
    fn a_lookup_overtaken_by_a_message_is_not_kept() {
        use crate::backend::redis::near::Near;
        use crate::version::{Seen, Token};
        use std::sync::Arc;
        const NAMES: [&str; 3] = ["ns:e:f:{k}", "ns:k:{k}", "ns:t:{t}"];
        let meta = crate::entry::Meta {
            expires_ms: u64::MAX / 2,
            ..Default::default()
        };
        let entry = crate::entry::begin(&[], meta, 1).unwrap();
        let versions = vec![
            Seen::Current(Token::random()),
            Seen::Current(Token::random()),
        ];
        let near = Arc::new(Near::new(1 << 20, true, None));
        // Two lookups of the same names in flight (the table counts
        // them), kept in the other order.
        let reader = {
            let near = near.clone();
            loom::thread::spawn(move || {
                let first = near.reading(NAMES.into_iter());
                let second = near.reading(NAMES.into_iter());
                let since = [first.since(), second.since()];
                second.keep(vec![2], &entry, &versions);
                first.keep(vec![1], &entry, &versions);
                let held = near.get(NAMES[0]);
                (since, held)
            })
        };
        near.invalidate(Some(&[NAMES[2].as_bytes()]));
        let (since, held) = reader.join().unwrap();
        // Kept only by a lookup registered after the message.
        let registered =
            |kept: &crate::backend::redis::near::KeptLookup| since[kept.conns[0] as usize - 1];
        if let Some(kept) = near.get(NAMES[0]) {
            assert!(registered(&kept) > 0, "an overtaken lookup was kept");
        }
        if let Some(held) = held {
            if registered(&held) == 0 {
                assert!(
                    !near.still(&held),
                    "an overtaken lookup was kept for its holder"
                );
            }
        }
    }

    #[cfg(feature = "redis")]
    #[test]
    fn loom_the_near_cache_keeps_no_overtaken_lookup() {
        assert!(
            !fails(Weakening::None, a_lookup_overtaken_by_a_message_is_not_kept),
            "the near-cache failed under loom"
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn loom_catches_a_near_cache_that_keeps_overtaken_lookups() {
        assert!(
            fails(
                Weakening::KeepOvertaken,
                a_lookup_overtaken_by_a_message_is_not_kept
            ),
            "loom no longer catches the weakened near-cache"
        );
    }

    /// I8: a caller misses while a flight of its key fills and ends. It
    /// follows the flight, or leads a new one only after noticing the
    /// flight's end (the epoch) and reading again, which finds the fill:
    /// the body runs once.
    fn a_miss_during_a_flight_runs_no_second_body() {
        use crate::flight::{Flights, Role};
        use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
        use std::sync::Arc;
        let flights = Arc::new(Flights::default());
        let filled = Arc::new(AtomicBool::new(false));
        let runs = AtomicUsize::new(0);
        let Role::Leader(guard) = flights.join("k") else {
            unreachable!("nothing else flies");
        };
        runs.fetch_add(1, SeqCst);
        let leader = {
            let filled = filled.clone();
            loom::thread::spawn(move || {
                filled.store(true, SeqCst);
                drop(guard);
            })
        };
        // `Cache::fetch`: the epoch, then the cache, then the flight.
        let before = flights.epoch("k");
        if !filled.load(SeqCst) {
            match flights.join("k") {
                Role::Leader(mine) => {
                    let read_again = flights.epoch("k") != before;
                    if !(read_again && filled.load(SeqCst)) {
                        runs.fetch_add(1, SeqCst);
                    }
                    drop(mine);
                }
                // Waits for the flight, then reads again: the fill.
                Role::Follower(_) => {}
            }
        }
        leader.join().unwrap();
        assert_eq!(runs.load(SeqCst), 1, "the body ran twice");
    }

    #[test]
    fn loom_a_flight_runs_the_body_once() {
        assert!(
            !fails(Weakening::None, a_miss_during_a_flight_runs_no_second_body),
            "flights failed under loom"
        );
    }

    #[test]
    fn loom_catches_an_epoch_bumped_after_the_lock() {
        assert!(
            fails(
                Weakening::EpochAfterUnlock,
                a_miss_during_a_flight_runs_no_second_body
            ),
            "loom no longer catches the weakened flights"
        );
    }

    /// I12 on a cluster: a caller joins an ordering batch while its sender
    /// closes it; if it joined, the round trip reads its names.
    #[cfg(feature = "redis")]
    #[test]
    fn loom_the_ordering_batch_reads_every_joined_callers_names() {
        assert!(
            !fails(
                Weakening::None,
                crate::backend::redis::near::tracking::a_joined_caller_has_its_names_read
            ),
            "the ordering batcher failed under loom"
        );
    }

    /// I13: a batch whose sending task is dropped unsent still answers
    /// every caller that joined it.
    #[cfg(feature = "redis")]
    #[test]
    fn loom_an_unsent_batch_answers_its_callers() {
        assert!(
            !fails(
                Weakening::None,
                crate::backend::redis::near::tracking::a_caller_of_an_unsent_batch_is_answered
            ),
            "the ordering batcher failed under loom"
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn loom_catches_an_unsent_batch_left_unanswered() {
        assert!(
            fails(
                Weakening::UnsentBatchUnanswered,
                crate::backend::redis::near::tracking::a_caller_of_an_unsent_batch_is_answered
            ),
            "loom no longer catches the weakened batcher"
        );
    }

    /// Lease reads: a hit reads a connection's confirmation whole, and
    /// one refresh round trip is in flight per connection.
    #[cfg(feature = "redis")]
    #[test]
    fn loom_a_confirmation_is_read_whole_and_refreshes_are_single_flight() {
        use crate::backend::redis::near::lease;
        assert!(
            !fails(Weakening::None, lease::a_hit_reads_one_confirmation_whole),
            "the confirmation failed under loom"
        );
        assert!(
            !fails(Weakening::None, lease::one_refresh_is_in_flight),
            "the refresh slot failed under loom"
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn loom_catches_a_torn_confirmation_and_a_two_step_refresh_slot() {
        use crate::backend::redis::near::lease;
        assert!(
            fails(
                Weakening::TornConfirmation,
                lease::a_hit_reads_one_confirmation_whole
            ),
            "loom no longer catches a confirmation in two words"
        );
        assert!(
            fails(
                Weakening::RefreshCheckedThenSet,
                lease::one_refresh_is_in_flight
            ),
            "loom no longer catches a refresh slot taken in two steps"
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn loom_catches_names_taken_before_the_batch_closes() {
        assert!(
            fails(
                Weakening::ProbesTakenBeforeClose,
                crate::backend::redis::near::tracking::a_joined_caller_has_its_names_read
            ),
            "loom no longer catches the weakened batcher"
        );
    }

    #[test]
    fn loom_the_pending_set_never_hides_a_kept_bust() {
        assert!(
            !fails(Weakening::None, a_kept_bust_is_never_hidden_by_a_delivery),
            "the pending set failed under loom"
        );
    }

    #[test]
    fn loom_catches_a_flag_cleared_after_the_lock() {
        assert!(
            fails(
                Weakening::MarkAfterUnlock,
                a_kept_bust_is_never_hidden_by_a_delivery
            ),
            "loom no longer catches the weakened pending set"
        );
    }
}
