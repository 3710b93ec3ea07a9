//! Which results of a function are cached, chosen by its return type.

use serde::{de::DeserializeOwned, Serialize};

/// How a function's return type maps to a cached value.
///
/// The macros pick one of the implementors below from the written return
/// type: `Result<T, E>` caches `Ok(T)`; `Option<T>` caches `Some(T)` (and
/// `None` too with `cache_none = true`); any other `T` is cached as is.
pub trait Mode<R> {
    /// What is stored.
    type Value: Serialize + DeserializeOwned;
    /// The part of a result to store, if it is to be stored.
    fn cacheable(out: &R) -> Option<&Self::Value>;
    /// Rebuilds a result from a stored value.
    fn from_cached(value: Self::Value) -> R;
}

/// `Result<T, E>`: only `Ok` is cached.
#[derive(Debug)]
pub struct ResultMode;

impl<T: Serialize + DeserializeOwned, E> Mode<Result<T, E>> for ResultMode {
    type Value = T;
    fn cacheable(out: &Result<T, E>) -> Option<&T> {
        out.as_ref().ok()
    }
    fn from_cached(value: T) -> Result<T, E> {
        Ok(value)
    }
}

/// `Option<T>`: only `Some` is cached.
#[derive(Debug)]
pub struct OptionMode;

impl<T: Serialize + DeserializeOwned> Mode<Option<T>> for OptionMode {
    type Value = T;
    fn cacheable(out: &Option<T>) -> Option<&T> {
        out.as_ref()
    }
    fn from_cached(value: T) -> Option<T> {
        Some(value)
    }
}

/// Any other type, and `Option<T>` with `cache_none = true`: always cached.
#[derive(Debug)]
pub struct ValueMode;

impl<T: Serialize + DeserializeOwned> Mode<T> for ValueMode {
    type Value = T;
    fn cacheable(out: &T) -> Option<&T> {
        Some(out)
    }
    fn from_cached(value: T) -> T {
        value
    }
}
