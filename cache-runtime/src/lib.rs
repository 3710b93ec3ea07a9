//! The runtime of cachette: backends, key building, versioned invalidation,
//! codec and stats. Users depend on the `cachette` crate, which re-exports
//! everything public here.
//!
//! # How invalidation stays correct
//! Every key and every tag has a *version*: a random token stored under its
//! own backend key. A fill records the tokens it read *before* running the
//! function's body, inside the entry. A read is a hit only if every recorded
//! token equals the one stored now. An invalidation replaces the tokens of
//! its keys and tags with fresh random ones, so any entry filled from data
//! read before it, even one written after it returned, can never validate.
//! A lost token (evicted, expired, flushed) matches nothing, so losing state
//! only costs misses. A bust is O(1) per key or tag whatever the number of
//! entries under it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod background;
mod batch;
mod breaker;
mod builder;
mod cache;
mod codec;
mod companion;
mod deferred;
mod derived;
mod entry;
mod error;
mod events;
mod flight;
mod global;
mod held;
mod hooks;
mod invalidate;
mod keep;
mod key;
#[cfg(feature = "__loom")]
mod loom;
mod loud;
mod mode;
mod names;
mod pending;
mod policy;
mod read;
mod replicas;
pub mod scope;
mod shim;
mod signing;
mod spans;
mod stats;
mod sync;
mod telemetry;
pub mod testing;
mod timeout;
#[cfg(feature = "tower")]
pub mod tower;
mod version;

#[doc(hidden)]
pub mod __private;
#[cfg(feature = "redis")]
#[doc(hidden)]
pub mod admin;

#[cfg(feature = "redis")]
pub use crate::backend::redis::scripts::SERVER_FUNCTIONS;
pub use crate::builder::CacheBuilder;
pub use crate::cache::Cache;
pub use crate::codec::Codec;
pub use crate::companion::EntryKey;
pub use crate::deferred::deferred;
pub use crate::error::{Error, ErrorKind};
pub use crate::events::{Event, EventKind};
pub use crate::global::{forbid_default_cache, init};
pub use crate::key::{escape, KeyBuilder, KeyName, TagName};
pub use crate::names::MAX_NAME_LEN;
pub use crate::policy::{Clock, FastRandom, Monotonic, Random, SystemClock, SystemMonotonic};
pub use crate::replicas::ReplicaAcks;
pub use crate::signing::MIN_SIGNING_KEY_LEN;
pub use crate::stats::Stats;
pub use crate::timeout::Elapsed;
