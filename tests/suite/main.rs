//! The integration suite: one binary, so the crate links once.

mod support;

mod backends;
mod faults;
mod invalidation;
mod keys;
mod macros;
mod metrics;
mod proxy;
mod redis_costs;
mod reliability;
mod strategies;
mod tls;
