//! The protocol holds in every interleaving within the bounds, and each
//! weakened protocol is caught with a counterexample.

use cachette_model::{Protocol, Weakening};
use stateright::{Checker, Model};

const PROPERTY: &str = "no read returns a value older than a completed write";

fn holds(name: &str, protocol: Protocol) {
    let checker = protocol.checker().spawn_bfs().join();
    eprintln!(
        "MODEL | {name} | {} states explored, {} unique, depth {} |",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth()
    );
    checker.assert_properties();
}

#[test]
fn the_protocol_never_serves_a_stale_read() {
    holds(
        "2 processes (3 readers), 2 writes",
        Protocol::readers_and_writers(2, Weakening::None),
    );
}

#[test]
fn the_protocol_never_serves_a_stale_read_when_redis_loses_a_name() {
    holds(
        "2 processes, 1 write, 1 lost name",
        Protocol::with_faults(1, 0, 0, Weakening::None),
    );
}

#[test]
fn the_protocol_never_serves_a_stale_read_across_a_restart() {
    holds(
        "2 processes, 1 write, a restart from a snapshot",
        Protocol::with_faults(0, 1, 0, Weakening::None),
    );
}

#[test]
fn the_protocol_never_serves_a_stale_read_with_shared_orderings() {
    holds(
        "2 processes (4 readers), 1 write",
        Protocol::shared_orderings(Weakening::None),
    );
}

#[test]
fn the_protocol_never_serves_a_stale_read_while_a_bust_is_kept() {
    holds(
        "2 processes, 1 write whose bust fails and is retried",
        Protocol::with_faults(0, 0, 1, Weakening::None),
    );
}

#[test]
fn the_protocol_never_serves_a_stale_read_with_transactions() {
    holds(
        "2 processes, 1 write in a transaction, its bust deferred to the commit",
        Protocol::with_transactions(Weakening::None),
    );
}

fn caught(protocol: Protocol) {
    let weakening = protocol.weakening;
    let checker = protocol.checker().spawn_bfs().join();
    let path = checker.discovery(PROPERTY).unwrap_or_else(|| {
        panic!(
            "{weakening:?} was not caught: {:?}, {} states",
            checker.discoveries().keys().collect::<Vec<_>>(),
            checker.unique_state_count()
        )
    });
    eprintln!(
        "MODEL | {weakening:?} | counterexample in {} steps, {} states explored |\n{}",
        path.clone().into_actions().len(),
        checker.unique_state_count(),
        path.into_actions()
            .iter()
            .enumerate()
            .map(|(i, a)| format!("  {:>2}. {a:?}", i + 1))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn capturing_versions_after_the_read_is_caught() {
    caught(Protocol::readers_and_writers(
        1,
        Weakening::CaptureAfterRead,
    ));
}

#[test]
fn a_near_cache_without_ordering_is_caught() {
    caught(Protocol::readers_and_writers(
        1,
        Weakening::NearWithoutOrdering,
    ));
}

#[test]
fn a_follower_taking_its_leaders_value_is_caught() {
    caught(Protocol::readers_and_writers(
        1,
        Weakening::FollowerTakesLeadersValue,
    ));
}

#[test]
fn a_restart_that_keeps_entries_valid_is_caught() {
    caught(Protocol::with_faults(
        0,
        1,
        0,
        Weakening::RestartKeepsEntries,
    ));
}

#[test]
fn a_bust_that_deletes_the_entry_is_caught() {
    caught(Protocol::readers_and_writers(1, Weakening::BustDeletes));
}

#[test]
fn joining_an_ordering_round_trip_already_sent_is_caught() {
    caught(Protocol::shared_orderings(Weakening::JoinSentOrdering));
}

#[test]
fn serving_what_a_kept_bust_names_is_caught() {
    caught(Protocol::with_faults(0, 0, 1, Weakening::ServeWhilePending));
}

#[test]
fn locks_never_affect_correctness() {
    holds(
        "2 processes, 1 write, the lock strategy with expiring locks",
        Protocol::with_locks(Weakening::None),
    );
}

#[test]
fn keeping_an_overtaken_lookup_is_caught() {
    caught(Protocol::readers_and_writers(1, Weakening::KeepOvertaken));
}

#[test]
fn clearing_a_kept_bust_before_redis_took_it_is_caught() {
    caught(Protocol::with_faults(
        0,
        0,
        1,
        Weakening::ClearPendingBeforeBust,
    ));
}

#[test]
fn busting_before_the_commit_is_caught() {
    caught(Protocol::with_transactions(Weakening::BustBeforeCommit));
}
