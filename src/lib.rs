//! Declarative caching for async Rust, on Redis or in memory.
//!
//! ```
//! use cachette::{cached, invalidates, Cache};
//!
//! #[cached(key = "user:<id>", ttl = 300, tags = ["org:<org>"], cache = cache)]
//! async fn get_user(cache: &Cache, id: u64, org: &str) -> Result<String, std::io::Error> {
//!     Ok(format!("user {id} of {org}"))
//! }
//!
//! #[invalidates(keys = ["user:<id>"], cache = cache)]
//! async fn rename_user(cache: &Cache, id: u64) -> Result<(), std::io::Error> {
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let cache = Cache::memory();
//! get_user(&cache, 1, "acme").await.unwrap(); // miss: the body runs
//! get_user(&cache, 1, "acme").await.unwrap(); // hit
//! rename_user(&cache, 1).await.unwrap();      // busts user:1
//! get_user(&cache, 1, "acme").await.unwrap(); // miss again
//! assert_eq!(cache.stats().hits, 1);
//! # }
//! ```
//!
//! Start with [`guide`]: the attributes and their options, how invalidation
//! stays correct, Redis and Redis Cluster, operations.
//!
//! # How invalidation stays correct
//!
//! Every key and tag has a version, a random token in Redis; an entry
//! records the versions its fill read before its body ran and is a hit only
//! while they are all current; a bust writes new tokens ([`guide::invalidation`]).
//! The promises, each with the tests that check it (under `tests/suite/`,
//! against real `redis-server`s and the embedded backend):
//!
//! | | promise | checked by |
//! |---|---|---|
//! | I1 | once an invalidation has returned, no read that starts afterwards returns a value computed before it | `invalidation::stale_set_race_is_closed_for_key_busts`, `..._for_tag_busts`, `..._for_lock_strategy_fills`; `strategies::an_swr_refresh_that_raced_an_invalidation_cannot_overwrite_it`, `strategies::a_caller_arriving_after_a_bust_does_not_take_an_older_flights_value`; `companions::a_refresh_that_races_a_bust_cannot_overwrite_it`; `tags::a_bust_of_a_derived_tag_during_the_body_is_not_missed`; `deferred::busts_wait_for_the_end_of_the_scope` and, against SQLite in WAL mode, `examples/service/tests/transactions.rs`; the stale-read checkers of `faults` and `cluster` |
//! | I2 | lost bookkeeping (evicted, expired, flushed versions) only causes misses | `invalidation::lost_versions_only_cause_misses`; `faults::flushall_mid_run`, `faults::maxmemory_evicts_entries_and_versions` |
//! | I3 | a bust costs the same whatever the entries under its tags | `redis_costs::a_bust_costs_the_same_whatever_the_entries_under_the_tag`, `redis_costs::a_bust_of_many_tags_and_keys_is_one_round_trip` |
//! | I4 | nothing is immortal: every name written has a TTL | `invalidation::every_key_written_has_a_ttl`; `security::misses_do_not_leave_versions_behind` |
//! | I5 | distinct arguments render distinct keys; an argument never widens a bust | `keys::arguments_that_join_alike_are_different_entries`, `keys::a_tag_argument_cannot_bust_another_tag`, `identity::a_shortened_name_is_never_an_unshortened_one` |
//! | I6 | the cache never breaks the function (Redis down, slow, full, or holding garbage) | `backends::undecodable_values_are_misses_that_get_overwritten`, `backends::an_unreachable_redis_is_read_through`, `reliability::an_open_breaker_stops_calling_redis_until_a_probe_succeeds`, `faults::redis_stalled_for_five_seconds` |
//! | I7 | locks are an efficiency tool: released by their owner only, waited on for a bounded time | `strategies::a_lapsed_holder_cannot_release_the_next_holders_lock`, `strategies::a_killed_lock_holder_delays_the_others_at_most_its_lock_ttl`, `invalidation::stale_set_race_is_closed_for_lock_strategy_fills` |
//! | I8 | stampedes collapse: once per process, once per fleet with `lock`; a cancelled leader strands nobody | `strategies::five_hundred_concurrent_misses_run_the_body_once`, `strategies::four_processes_run_a_locked_body_once`, `strategies::followers_finish_when_the_leader_is_cancelled_or_panics` |
//! | I9 | invalidations are not silently lost: kept, retried, and what they name is not served meanwhile | `reliability::a_bust_made_while_redis_was_down_is_delivered_and_nothing_stale_is_served_meanwhile`, `reliability::an_invalidation_cancelled_mid_flight_is_kept_and_delivered`, `reliability::an_update_cancelled_after_its_write_still_busts`, `security::many_undelivered_busts_are_delivered_in_bounded_steps`, `deferred::a_panicking_or_dropped_scope_keeps_its_busts` |
//! | I10 | a restart or a failover only causes misses | `restarts::*`, `replicas::a_failover_to_a_replica_serves_nothing_from_before_it`, `replicas::a_master_resynced_from_an_older_copy_and_promoted_back_serves_nothing_from_it` |
//! | I11 | one entry per function; every way of naming a key reaches the same name | `identity::functions_and_instantiations_have_entries_of_their_own`, `identity::methods_of_different_types_have_entries_of_their_own`, `identity::programmatic_names_and_rendered_names_bust_each_other_at_every_length` |
//! | I12 | the near-cache (memory in front of Redis) obeys I1 across processes: a value from memory is proven current by a reply that left after the caller arrived, never by how fast invalidation messages travel | `near::an_invalidation_by_another_cache_reaches_memory_before_the_next_read`, `near::a_late_invalidation_message_is_waited_for`, `near::a_caller_does_not_take_an_ordering_round_trip_sent_before_it`, `near::a_lost_connection_or_a_flush_empties_memory`, `near::a_tracking_table_that_overflows_only_costs_misses`, `cluster::the_near_cache_holds_on_a_cluster` |
//! | I13 | a cache may be used from any runtime, any number of them: no connection, driver, ordering round trip, bust delivery or refresh bookkeeping waits on a runtime cachette does not own, every wait has a deadline on cachette's own timer, and a session that only times out is replaced (guide: `operations`) | `runtimes::a_kept_hit_survives_the_runtime_that_connected`, `runtimes::a_bust_from_another_runtime_reaches_redis_while_the_first_idles`, `runtimes::a_connection_that_only_times_out_is_replaced`, `runtime_faults::a_nested_executor_on_a_silent_connection_still_times_out`, `default_cache_runtimes` |
//!
//! What each promise does not cover (a Redis that loses acknowledged writes
//! without a restart, a split brain longer than `repl-timeout` with
//! `ReplicaAcks::Auto`, ...) is listed in `RELIABILITY.md`, "Known limits".

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use cache_macros::{cached, cached_impl, invalidates, names, tag};
#[cfg(feature = "tower")]
pub use cache_runtime::tower;
pub use cache_runtime::{
    deferred, escape, forbid_default_cache, init, Cache, CacheBuilder, Clock, Codec, Elapsed,
    EntryKey, Error, ErrorKind, Event, EventKind, FastRandom, KeyBuilder, KeyName, Monotonic,
    Random, ReplicaAcks, Stats, SystemClock, SystemMonotonic, TagName, MAX_NAME_LEN,
    MIN_SIGNING_KEY_LEN,
};
pub use cache_runtime::{scope, testing};

#[cfg(feature = "redis")]
pub use cache_runtime::SERVER_FUNCTIONS;

#[doc = include_str!("../docs/guide.md")]
pub mod guide {
    #[doc = include_str!("../docs/attributes.md")]
    pub mod attributes {}
    #[doc = include_str!("../docs/batches.md")]
    pub mod batches {}
    #[doc = include_str!("../docs/invalidation.md")]
    pub mod invalidation {}
    #[doc = include_str!("../docs/redis.md")]
    pub mod redis {}
    #[doc = include_str!("../docs/cluster.md")]
    pub mod cluster {}
    #[doc = include_str!("../docs/operations.md")]
    pub mod operations {}
    #[doc = include_str!("../docs/upstash.md")]
    pub mod upstash {}
    #[doc = include_str!("../docs/testing.md")]
    pub mod testing {}
}

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(feature = "redis")]
#[doc(hidden)]
pub mod admin {
    pub use cache_runtime::admin::*;
}

#[doc(hidden)]
pub mod __private {
    pub use cache_runtime::__private::*;
}
