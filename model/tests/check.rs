//! The protocol holds in every interleaving within the bounds, and each
//! weakened protocol is caught with a counterexample.

use cachette_model::{Protocol, Reads, Weakening};
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
    counterexample(&format!("{:?}", protocol.weakening), protocol);
}

/// Asserts a counterexample for the property, and prints it.
fn counterexample(name: &str, protocol: Protocol) {
    let checker = protocol.checker().spawn_bfs().join();
    let path = checker.discovery(PROPERTY).unwrap_or_else(|| {
        panic!(
            "{name} was not caught: {:?}, {} states",
            checker.discoveries().keys().collect::<Vec<_>>(),
            checker.unique_state_count()
        )
    });
    eprintln!(
        "MODEL | {name} | counterexample in {} steps, {} states explored |\n{}",
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

// Lease reads (`model/src/lease.rs`): two processes, the writer's (1)
// with a lease of 1 tick unless said, one write (a key bust), a warm
// start: the entry filled, each process with a lease and readers keeping
// its lookup from a fresh connection, and knowing the namespace's lease.

use cachette_model::{Leases, Reconnects};

/// Process 0's lease `own0`, the writer's 1, the namespace's `ns`.
fn leases(own0: u8, ns: u8, ticks: u8) -> Leases {
    Leases::new(vec![own0, 1], Some(ns), ticks)
}

#[test]
fn lease_reads_never_serve_a_stale_read() {
    holds(
        "leases (process 0: 2; the writer's process: none, it waits the namespace's 1), 2 ticks, 2 processes reading, 1 write",
        Protocol::with_leases(
            vec![1, 1],
            Leases {
                own: vec![2, 0],
                ..leases(2, 1, 2)
            },
            Weakening::None,
        ),
    );
}

#[test]
fn lease_reads_never_serve_a_stale_read_across_a_raise() {
    holds(
        "leases (process 0: 2, the writer's: 1, the namespace's: 1, raised to 2), 3 ticks, 1 write",
        Protocol::with_leases(
            vec![1, 0],
            Leases {
                raise: Some(2),
                ..leases(2, 1, 3)
            },
            Weakening::None,
        ),
    );
}

#[test]
fn lease_reads_never_serve_a_stale_read_across_a_reconnect() {
    holds(
        "leases of 1, 2 ticks, process 0 (2 readers) reconnects, 1 write",
        Protocol::with_leases(
            vec![2, 0],
            Leases {
                reconnects: Reconnects::Drops(0),
                ..leases(1, 1, 2)
            },
            Weakening::None,
        ),
    );
}

#[test]
fn lease_reads_never_serve_a_stale_read_when_the_old_connection_lingers() {
    holds(
        "leases of 1, 2 ticks, process 0 reconnects and its old connection lingers, 1 write",
        Protocol::with_leases(
            vec![1, 0],
            Leases {
                reconnects: Reconnects::Lingers(0),
                ..leases(1, 1, 2)
            },
            Weakening::None,
        ),
    );
}

/// The setup the weakenings about other connections need: the old
/// connection tracks none of the key's names, so its round trip comes
/// behind no message for the key.
#[test]
fn lease_reads_never_serve_a_stale_read_with_another_connection_and_a_raise() {
    holds(
        "leases (process 0: 2, the writer's: 1, the namespace's: 1, raised to 2), 2 ticks, process 0 starting with a lingering old connection that tracks nothing, 1 write",
        Protocol::with_leases(
            vec![1, 0],
            Leases {
                raise: Some(2),
                reconnects: Reconnects::Lingers(0),
                lingering_at_start: true,
                ..leases(2, 1, 2)
            },
            Weakening::None,
        ),
    );
}

/// Copying a confirmation into the new connection is harmless: its tick
/// is no later than the reconnect, so no earlier than every lookup kept
/// from the new connection was read, and a bust of what such a lookup
/// read is acknowledged after it and waits out the lease. What the rule
/// "confirmations die with their connection" does forbid is a
/// confirmation the old connection can still renew (caught below).
#[test]
fn a_confirmation_copied_across_a_reconnect_is_harmless() {
    holds(
        "ConfirmationCopiedAcrossReconnect: leases of 1, 2 ticks, process 0 (2 readers) reconnects, 1 write",
        Protocol::with_leases(
            vec![2, 0],
            Leases {
                reconnects: Reconnects::Drops(0),
                ..leases(1, 1, 2)
            },
            Weakening::ConfirmationCopiedAcrossReconnect,
        ),
    );
}

#[test]
fn a_writer_that_does_not_wait_is_caught() {
    caught(Protocol::with_leases(
        vec![1, 0],
        leases(1, 1, 1),
        Weakening::WriterDoesNotWait,
    ));
}

#[test]
fn a_writer_that_waits_less_than_the_lease_is_caught() {
    caught(Protocol::with_leases(
        vec![1, 0],
        leases(1, 1, 1),
        Weakening::WriterWaitsLessThanTheLease,
    ));
}

#[test]
fn a_writer_that_waits_its_own_smaller_lease_is_caught() {
    caught(Protocol::with_leases(
        vec![1, 0],
        leases(2, 2, 2),
        Weakening::WriterWaitsItsOwnLease,
    ));
}

#[test]
fn a_stale_confirmation_is_caught() {
    caught(Protocol::with_leases(
        vec![1, 0],
        leases(1, 1, 2),
        Weakening::StaleConfirmation,
    ));
}

#[test]
fn a_confirmation_taken_after_queuing_is_caught() {
    caught(Protocol::with_leases(
        vec![1, 0],
        leases(1, 1, 2),
        Weakening::ConfirmationTakenAfterQueuing,
    ));
}

#[test]
fn a_reader_using_its_own_larger_lease_is_caught() {
    caught(Protocol::with_leases(
        vec![1, 0],
        leases(2, 1, 2),
        Weakening::ReaderUsesItsOwnLargerLease,
    ));
}

/// With the old connection tracking the key's names, its round trip
/// would come behind the bust's message there, which drops the lookup:
/// see `lingering_at_start`.
#[test]
fn another_connections_confirmation_is_caught() {
    caught(Protocol::with_leases(
        vec![1, 0],
        Leases {
            reconnects: Reconnects::Lingers(0),
            lingering_at_start: true,
            ..leases(1, 1, 2)
        },
        Weakening::OtherConnectionsConfirmation,
    ));
}

#[test]
fn a_confirmation_kept_across_a_reconnect_is_caught() {
    caught(Protocol::with_leases(
        vec![1, 0],
        Leases {
            reconnects: Reconnects::Lingers(0),
            lingering_at_start: true,
            ..leases(1, 1, 2)
        },
        Weakening::ConfirmationKeptAcrossReconnect,
    ));
}

/// On one connection a raise made after a bust is learned only from a
/// reply behind the bust's message: it takes another connection.
#[test]
fn a_raised_lease_adopted_at_once_is_caught() {
    caught(Protocol::with_leases(
        vec![1, 0],
        Leases {
            raise: Some(2),
            reconnects: Reconnects::Lingers(0),
            lingering_at_start: true,
            ..leases(2, 1, 2)
        },
        Weakening::RaisedLeaseAdoptedAtOnce,
    ));
}

/// The namespace's lease lost (evicted, flushed, or expired: it has the
/// epoch's lifetime) while a reader still holds a confirmation under it:
/// the writer's process, with a lease of 1 (so it knows leases are in
/// use), reads it missing and waits the longest lease (2); or reads it
/// created again, young, and waits the longest lease too, though the
/// process that created it again (process 0's round trip, or another's,
/// `recreate`) may have a lease of 1, smaller than the lost one. It was a
/// counterexample in 10 steps while busts took a missing lease for none.
/// 3 ticks: a bust that waits the longest lease returns at 3 at the
/// earliest.
#[test]
fn lease_reads_never_serve_a_stale_read_when_the_lease_is_lost() {
    holds(
        "the namespace's lease lost (process 0: 2, the writer's: 1, the namespace's: 2), created again (by process 0, or by another with 1), 3 ticks, 1 write",
        Protocol::with_leases(
            vec![1, 0],
            Leases {
                lose: true,
                recreate: Some(1),
                ..leases(2, 2, 3)
            },
            Weakening::None,
        ),
    );
}

/// A writer's process with no lease of its own that has read the
/// namespace's once (`largest_seen`) knows leases are in use: a missing
/// lease is a lost one.
#[test]
fn lease_reads_never_serve_a_stale_read_when_the_lease_is_lost_and_the_writer_read_it_before() {
    holds(
        "the namespace's lease lost (process 0: 2, the writer's: none, having read 2 before, the namespace's: 2), 3 ticks, 1 write",
        Protocol::with_leases(
            vec![1, 0],
            Leases {
                own: vec![2, 0],
                seen_at_start: 2,
                lose: true,
                ..leases(2, 2, 3)
            },
            Weakening::None,
        ),
    );
}

/// So does one told so (`CacheBuilder::assume_lease_readers`).
#[test]
fn lease_reads_never_serve_a_stale_read_when_the_lease_is_lost_and_the_writer_assumes_readers() {
    holds(
        "the namespace's lease lost (process 0: 2, the writer's: none, assuming lease readers, the namespace's: 2), 3 ticks, 1 write",
        Protocol::with_leases(
            vec![1, 0],
            Leases {
                own: vec![2, 0],
                aware: true,
                lose: true,
                ..leases(2, 2, 3)
            },
            Weakening::None,
        ),
    );
}

#[test]
fn a_missing_lease_taken_for_none_is_caught() {
    caught(Protocol::with_leases(
        vec![1, 0],
        Leases {
            lose: true,
            ..leases(2, 2, 2)
        },
        Weakening::MissingLeaseWaitsNothing,
    ));
}

/// Another process creates the lease again with its smaller 1, and the
/// bust reads that.
#[test]
fn a_young_lease_trusted_is_caught() {
    caught(Protocol::with_leases(
        vec![1, 0],
        Leases {
            lose: true,
            recreate: Some(1),
            ..leases(2, 2, 2)
        },
        Weakening::YoungLeaseTrusted,
    ));
}

/// The gap left, not a weakening: a writer's process that has no lease of
/// its own, has never read the namespace's, and is not told readers use
/// one, takes a missing lease for none (a namespace nobody reads under a
/// lease must not pay for it), so a bust of it made while the lease is
/// lost returns at once. Processes that bust a namespace read under a
/// lease must know it (`assume_lease_readers`, or a lease of their own).
#[test]
fn a_writer_unaware_of_leases_busting_a_lost_lease_can_serve_a_stale_read() {
    counterexample(
        "the namespace's lease lost, the writer unaware (process 0: 2, the writer's: none, never read, the namespace's: 2)",
        Protocol::with_leases(
            vec![1, 0],
            Leases {
                own: vec![2, 0],
                lose: true,
                ..leases(2, 2, 2)
            },
            Weakening::None,
        ),
    );
}

// Batch reads (`read/batch.rs`, `Protocol::with_batches`): two elements,
// each with its own key version, both carrying the tag; process 0 runs a
// batch of both and a single-key reader of element 0, the writer's
// process a batch of both; one write, of either row, and a bust of its
// key or of the tag.

#[test]
fn batch_reads_never_serve_a_stale_read() {
    holds(
        "batches: 2 elements sharing a tag, 2 processes (2 batches, a single-key reader coalescing with one), 1 write",
        Protocol::with_batches(Weakening::None),
    );
}

#[test]
fn a_batch_capturing_after_its_body_is_caught() {
    caught(Protocol::with_batches(Weakening::BatchCapturesAfterBody));
}

#[test]
fn a_batch_storing_under_the_tags_versions_only_is_caught() {
    caught(Protocol::with_batches(
        Weakening::BatchStoresUnderTheTagsVersions,
    ));
}

#[test]
fn a_follower_taking_a_batchs_value_is_caught() {
    caught(Protocol::with_batches(Weakening::FollowerTakesBatchsValue));
}

#[test]
fn a_batch_following_a_flight_and_taking_its_value_is_caught() {
    counterexample(
        "FollowerTakesLeadersValue, a batch following a single-key reader",
        Protocol::with_batches(Weakening::FollowerTakesLeadersValue),
    );
}

/// Storing every element under the first one's versions only loses hits:
/// an entry is checked against its own element's names, by position
/// (`same_versions`), and another element's key version is a different
/// random token, so the other elements' entries never validate. (Without
/// the single-key reader, which only adds coalescing: the safety property
/// alone.)
#[test]
fn a_batch_storing_under_one_elements_versions_only_misses() {
    let batches = vec![vec![Reads::Batch], vec![Reads::Batch]];
    let protocol = Protocol {
        readers: vec![1, 1],
        batches: Some(batches),
        ..Protocol::with_batches(Weakening::BatchStoresUnderOneElementsVersions)
    };
    let checker = protocol.checker().spawn_bfs().join();
    eprintln!(
        "MODEL | BatchStoresUnderOneElementsVersions: a batch in each process, 1 write | {} states explored, {} unique, depth {} |",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth()
    );
    checker.assert_no_discovery(PROPERTY);
}
