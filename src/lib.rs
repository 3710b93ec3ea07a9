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
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use cache_macros::{cached, invalidates};
pub use cache_runtime::{
    escape, forbid_default_cache, init, Cache, CacheBuilder, Clock, Codec, Error, ErrorKind,
    FastRandom, KeyBuilder, Random, ReplicaAcks, Stats, SystemClock, MAX_NAME_LEN,
    MIN_SIGNING_KEY_LEN,
};

#[cfg(feature = "redis")]
pub use cache_runtime::SERVER_FUNCTIONS;

#[doc(hidden)]
pub mod __private {
    pub use cache_runtime::__private::*;
}
