//! The integration suite: one binary, so the crate links once.

mod scenarios;
mod support;

mod backends;
mod batch_races;
mod batches;
#[cfg(feature = "cluster")]
mod cluster;
mod codecs;
#[allow(async_fn_in_trait)]
mod companions;
mod deferred;
mod events;
mod faults;
mod identity;
mod invalidation;
mod keys;
mod leases;
mod macros;
mod mistakes;
mod near;
mod options;
mod pending_reads;
mod redis_costs;
mod reliability;
mod replicas;
mod restarts;
mod runtime_faults;
mod runtimes;
mod scopes;
mod security;
mod spans;
mod strategies;
mod tags;
mod timeouts;
mod tls;
#[cfg(feature = "upstash")]
mod upstash;
mod value_ttls;
