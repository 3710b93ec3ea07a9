//! The integration suite: one binary, so the crate links once.

mod support;

mod backends;
mod invalidation;
mod keys;
mod macros;
mod metrics;
mod redis_costs;
mod reliability;
mod strategies;
mod tls;
