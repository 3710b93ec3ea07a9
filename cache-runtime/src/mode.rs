//! Which results of a function are cached, chosen by its return type: by
//! what the type is, not by how it is spelled, so `io::Result<T>` and
//! `type ApiResult<T> = Result<T, ApiError>` cache only `Ok`.
//!
//! The attributes pick a mode with [`Select`]: a method call on
//! `&&&Select<R>` resolves to the `Result<Option<_>, _>` impl, then the
//! `Result` or `Option` impl when `R` is one
//! of them, through any alias, and to the plain one otherwise. When `R` is
//! a type parameter, the choice is made before it is known; the plain mode
//! then refuses, at run time, to store a `Result` or an `Option`.

use std::marker::PhantomData;

use serde::{de::DeserializeOwned, Serialize};

/// How a function's return type maps to a cached value.
pub trait Mode<R> {
    /// What is stored.
    type Value: Serialize + DeserializeOwned;
    /// The part of a result to store, if it is to be stored.
    fn cacheable(out: &R) -> Option<&Self::Value>;
    /// Rebuilds a result from a stored value.
    fn from_cached(value: Self::Value) -> R;
    /// Whether the body failed (an `Err`), for `stale_if_error`.
    fn failed(_out: &R) -> bool {
        false
    }
    /// Whether `out` is the result that means "not found" and is not
    /// stored (`None`, `Ok(None)`), which a flight's followers may be
    /// handed (see `flight.rs`).
    fn is_absent(_out: &R) -> bool {
        false
    }
    /// That result, rebuilt.
    fn absent() -> Option<R> {
        None
    }
}

/// What a mode stores for a return type `R`, named without the bounds
/// [`Mode`] puts on it: the value type whose keeper the expansion selects
/// (see `keep.rs`), so that a type that cannot be stored is reported once,
/// by the mode.
pub trait Stores<R> {
    /// What is stored.
    type Stored;
}

impl<T, E> Stores<Result<T, E>> for ResultMode {
    type Stored = T;
}

impl<T, E> Stores<Result<Option<T>, E>> for ResultOptionMode {
    type Stored = T;
}

impl<T> Stores<Option<T>> for OptionMode {
    type Stored = T;
}

impl<T> Stores<T> for ValueMode {
    type Stored = T;
}

impl<T> Stores<T> for PlainMode {
    type Stored = T;
}

/// `Result<T, E>`: only `Ok` is cached.
#[derive(Debug, Clone, Copy)]
pub struct ResultMode;

impl<T: Serialize + DeserializeOwned, E> Mode<Result<T, E>> for ResultMode {
    type Value = T;
    fn cacheable(out: &Result<T, E>) -> Option<&T> {
        // A generic `Result<T, E>` whose `T` turns out to be an `Option`
        // would keep "not found", which `Result<Option<T>, E>` does not.
        if hides_option::<T>() {
            return None;
        }
        out.as_ref().ok()
    }
    fn from_cached(value: T) -> Result<T, E> {
        Ok(value)
    }
    fn failed(out: &Result<T, E>) -> bool {
        out.is_err()
    }
}

/// `Result<T, E>` whose `Ok` values are all kept, `None` included:
/// `Result<Option<T>, E>` with `cache_none` or `none_ttl`, and
/// `Cache::get_or_fetch`, whose `T` the caller chose.
#[derive(Debug, Clone, Copy)]
pub struct ResultNoneMode;

impl<T: Serialize + DeserializeOwned, E> Mode<Result<T, E>> for ResultNoneMode {
    type Value = T;
    fn cacheable(out: &Result<T, E>) -> Option<&T> {
        out.as_ref().ok()
    }
    fn from_cached(value: T) -> Result<T, E> {
        Ok(value)
    }
    fn failed(out: &Result<T, E>) -> bool {
        out.is_err()
    }
}

impl<T, E> Stores<Result<T, E>> for ResultNoneMode {
    type Stored = T;
}

/// `Result<Option<T>, E>`: only `Ok(Some(_))` is cached, as for an
/// `Option`: "not found" is not kept unless asked (`cache_none = true`
/// or `none_ttl`, which select [`ResultMode`] and store the `Option`).
#[derive(Debug, Clone, Copy)]
pub struct ResultOptionMode;

impl<T: Serialize + DeserializeOwned, E> Mode<Result<Option<T>, E>> for ResultOptionMode {
    type Value = T;
    fn cacheable(out: &Result<Option<T>, E>) -> Option<&T> {
        out.as_ref().ok().and_then(Option::as_ref)
    }
    fn from_cached(value: T) -> Result<Option<T>, E> {
        Ok(Some(value))
    }
    fn failed(out: &Result<Option<T>, E>) -> bool {
        out.is_err()
    }
    fn is_absent(out: &Result<Option<T>, E>) -> bool {
        matches!(out, Ok(None))
    }
    fn absent() -> Option<Result<Option<T>, E>> {
        Some(Ok(None))
    }
}

/// `Option<T>`: only `Some` is cached.
#[derive(Debug, Clone, Copy)]
pub struct OptionMode;

impl<T: Serialize + DeserializeOwned> Mode<Option<T>> for OptionMode {
    type Value = T;
    fn cacheable(out: &Option<T>) -> Option<&T> {
        out.as_ref()
    }
    fn from_cached(value: T) -> Option<T> {
        Some(value)
    }
    fn is_absent(out: &Option<T>) -> bool {
        out.is_none()
    }
    fn absent() -> Option<Option<T>> {
        Some(None)
    }
}

/// `Option<T>` with `cache_none = true`: `None` is cached too.
#[derive(Debug, Clone, Copy)]
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

/// Any other type: always cached, unless it turns out to be a `Result` or
/// an `Option` that the attribute could not see (a generic return type).
#[derive(Debug, Clone, Copy)]
pub struct PlainMode;

impl<T: Serialize + DeserializeOwned> Mode<T> for PlainMode {
    type Value = T;
    fn cacheable(out: &T) -> Option<&T> {
        if hides_result_or_option::<T>() {
            return None;
        }
        Some(out)
    }
    fn from_cached(value: T) -> T {
        value
    }
}

/// Whether `T`, which was taken for a plain type, is a `Result` or an
/// `Option` after all: it is then never stored, since its errors would be.
fn hides_result_or_option<T>() -> bool {
    let name = std::any::type_name::<T>();
    let hidden =
        name.starts_with("core::result::Result<") || name.starts_with("core::option::Option<");
    if hidden {
        crate::loud::warn_once("generic return type", name, || {
            format!(
                "cachette: a #[cached] function whose return type is a type parameter returned \
                 `{name}`, a Result or an Option: it is not cached, since its errors or `None` \
                 would be. Name a concrete return type to cache its Ok or Some values"
            )
        });
    }
    hidden
}

/// Whether `T`, a `Result`'s `Ok` type taken for a plain one, is an
/// `Option` after all (a generic return type): then nothing is stored.
fn hides_option<T>() -> bool {
    let name = std::any::type_name::<T>();
    let hidden = name.starts_with("core::option::Option<");
    if hidden {
        crate::loud::warn_once("generic result of option", name, || {
            format!(
                "cachette: a #[cached] function whose return type is `Result<T, E>` with `T` a type \
                 parameter returned `Result<{name}, _>`: it is not cached, since \"not found\" \
                 would be kept. Name `Result<Option<_>, _>` in the return type (with `none_ttl` \
                 to keep `None`)"
            )
        });
    }
    hidden
}

/// What `swr` and `stale_if_error` need of a mode: it stores every
/// successful result, so that a refresh or a miss that finds the row gone
/// replaces the value kept past its TTL, instead of leaving it to be served
/// (stale) or brought back (on an error).
#[diagnostic::on_unimplemented(
    message = "`swr` and `stale_if_error` serve a kept value past its TTL, so on a function returning `Option<T>` or `Result<Option<T>, E>` they need `cache_none = true` or `none_ttl`",
    label = "here `None` is not stored, so a row found missing would not replace the value kept",
    note = "add `none_ttl = \"30s\"` (or `cache_none = true`): \"not found\" then replaces the kept value"
)]
pub trait ServesStale {}

#[diagnostic::do_not_recommend]
impl ServesStale for ResultMode {}
#[diagnostic::do_not_recommend]
impl ServesStale for ResultNoneMode {}
#[diagnostic::do_not_recommend]
impl ServesStale for ValueMode {}
#[diagnostic::do_not_recommend]
impl ServesStale for PlainMode {}

/// Fails to compile unless `M` stores every successful result.
pub const fn serves_stale_applies<M: ServesStale>(_mode: &M) {}

/// Implemented by `Option` and `Result<Option<_>, _>` only:
/// `cache_none = true` requires it of the return type (checked at the
/// option, through any alias).
#[diagnostic::on_unimplemented(
    message = "`cache_none` applies only to functions returning `Option<T>` or `Result<Option<T>, E>`, not `{Self}`",
    label = "the return type has no `None` to cache"
)]
pub trait IsOption {}

#[diagnostic::do_not_recommend]
impl<T> IsOption for Option<T> {}

#[diagnostic::do_not_recommend]
impl<T, E> IsOption for Result<Option<T>, E> {}

/// A stored value that may be `None` (`none_ttl`).
#[diagnostic::on_unimplemented(
    message = "`none_ttl` applies only to functions returning `Option<T>` or `Result<Option<T>, E>`",
    label = "the return type has no `None` to cache"
)]
pub trait Nullable {
    /// The `Some` value.
    type Inner;
    /// The value, unless `None`.
    fn inner(&self) -> Option<&Self::Inner>;
}

#[diagnostic::do_not_recommend]
impl<T> Nullable for Option<T> {
    type Inner = T;
    fn inner(&self) -> Option<&T> {
        self.as_ref()
    }
}

/// A `Result` (`stale_if_error`).
#[diagnostic::on_unimplemented(
    message = "`stale_if_error` applies only to functions returning `Result`, not `{Self}`",
    label = "the return type is not a `Result`"
)]
pub trait IsResult {}

#[diagnostic::do_not_recommend]
impl<T, E> IsResult for Result<T, E> {}

/// Fails to compile unless `R` is a `Result`.
pub const fn stale_if_error_applies<R: IsResult>() {}

/// Fails to compile unless `R` is an `Option`.
pub const fn cache_none_applies<R: IsOption>() {}

/// Selects the mode of the return type `R`; see the module docs.
pub struct Select<R>(PhantomData<fn() -> R>);

impl<R> Select<R> {
    /// A selector for `R`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Select(PhantomData)
    }
}

/// The mode of a `Result<Option<T>, E>`, chosen before [`SelectResult`]
/// (one reference more).
pub trait SelectResultOption {
    /// The mode without `cache_none`: `Ok(None)` is not stored.
    fn __cachette_mode(&self) -> ResultOptionMode {
        ResultOptionMode
    }
    /// The mode with `cache_none = true` or `none_ttl`: the `Option` is
    /// stored, `None` included.
    fn __cachette_mode_none(&self) -> ResultNoneMode {
        ResultNoneMode
    }
    /// When an `#[invalidates]` function busts.
    fn __cachette_bust(&self) -> BustIfOk {
        BustIfOk
    }
}

impl<T, E> SelectResultOption for &&Select<Result<Option<T>, E>> {}

/// The mode of a `Result`.
pub trait SelectResult {
    /// The mode without `cache_none`.
    fn __cachette_mode(&self) -> ResultMode {
        ResultMode
    }
    /// The mode with `cache_none = true`.
    fn __cachette_mode_none(&self) -> ValueMode {
        ValueMode // refused by `cache_none_applies` first
    }
    /// When an `#[invalidates]` function busts.
    fn __cachette_bust(&self) -> BustIfOk {
        BustIfOk
    }
}

impl<T, E> SelectResult for &Select<Result<T, E>> {}

/// The mode of an `Option`.
pub trait SelectOption {
    /// The mode without `cache_none`.
    fn __cachette_mode(&self) -> OptionMode {
        OptionMode
    }
    /// The mode with `cache_none = true`.
    fn __cachette_mode_none(&self) -> ValueMode {
        ValueMode
    }
    /// When an `#[invalidates]` function busts.
    fn __cachette_bust(&self) -> BustAlways {
        BustAlways
    }
}

impl<T> SelectOption for &Select<Option<T>> {}

/// The mode of any other type.
pub trait SelectPlain {
    /// The mode without `cache_none`.
    fn __cachette_mode(&self) -> PlainMode {
        PlainMode
    }
    /// The mode with `cache_none = true`.
    fn __cachette_mode_none(&self) -> ValueMode {
        ValueMode // refused by `cache_none_applies` first
    }
    /// When an `#[invalidates]` function busts.
    fn __cachette_bust(&self) -> BustAlways {
        BustAlways
    }
}

impl<R> SelectPlain for Select<R> {}

/// When an `#[invalidates]` function's result calls for its bust.
pub trait BustWhen<R> {
    /// What `tags_from` is given when the call succeeded.
    type Success;
    /// Whether the call succeeded.
    fn succeeded(&self, out: &R) -> bool {
        self.success(out).is_some()
    }
    /// The successful result, if the call succeeded.
    fn success<'a>(&self, out: &'a R) -> Option<&'a Self::Success>;
}

/// A `Result`: after `Ok` only.
#[derive(Debug, Clone, Copy)]
pub struct BustIfOk;

impl<T, E> BustWhen<Result<T, E>> for BustIfOk {
    type Success = T;
    fn success<'a>(&self, out: &'a Result<T, E>) -> Option<&'a T> {
        out.as_ref().ok()
    }
}

/// Any other type: always.
#[derive(Debug, Clone, Copy)]
pub struct BustAlways;

impl<R> BustWhen<R> for BustAlways {
    type Success = R;
    fn success<'a>(&self, out: &'a R) -> Option<&'a R> {
        Some(out)
    }
}

/// The tags `derive` names for a successful result (`tags_from`).
pub fn derived_tags<V: ?Sized, I, S>(value: &V, derive: impl FnOnce(&V) -> I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: crate::key::IntoTag,
{
    derive(value).into_iter().map(S::into_tag).collect()
}

/// The keys `derive` names for a successful result (`keys_from`).
pub fn derived_keys<V: ?Sized, I, S>(value: &V, derive: impl FnOnce(&V) -> I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: crate::key::IntoKey,
{
    derive(value).into_iter().map(S::into_key).collect()
}

#[cfg(test)]
#[allow(clippy::needless_borrow)] // the autoref is how the selection works
mod tests {
    use super::*;

    type ApiResult<T> = Result<T, String>;
    type Maybe<T> = Option<T>;

    fn mode_name<M>(_: M) -> &'static str {
        std::any::type_name::<M>().rsplit("::").next().unwrap()
    }

    #[test]
    fn the_mode_follows_the_type_through_aliases() {
        assert_eq!(
            mode_name((&&&Select::<ApiResult<u8>>::new()).__cachette_mode()),
            "ResultMode"
        );
        assert_eq!(
            mode_name((&&&Select::<std::io::Result<u8>>::new()).__cachette_mode()),
            "ResultMode"
        );
        assert_eq!(
            mode_name((&&&Select::<Maybe<u8>>::new()).__cachette_mode()),
            "OptionMode"
        );
        assert_eq!(
            mode_name((&&&Select::<ApiResult<Maybe<u8>>>::new()).__cachette_mode()),
            "ResultOptionMode"
        );
        assert_eq!(
            mode_name((&&&Select::<ApiResult<Maybe<u8>>>::new()).__cachette_mode_none()),
            "ResultNoneMode"
        );
        let found: ApiResult<Option<u8>> = Ok(None);
        assert!(<ResultOptionMode as Mode<ApiResult<Option<u8>>>>::cacheable(&found).is_none());
        assert_eq!(
            <ResultOptionMode as Mode<ApiResult<Option<u8>>>>::cacheable(&Ok(Some(3))),
            Some(&3)
        );
        assert_eq!(
            mode_name((&&&Select::<Maybe<u8>>::new()).__cachette_mode_none()),
            "ValueMode"
        );
        assert_eq!(
            mode_name((&&&Select::<u8>::new()).__cachette_mode()),
            "PlainMode"
        );
        let ok: ApiResult<()> = Ok(());
        assert!((&&&Select::<ApiResult<()>>::new())
            .__cachette_bust()
            .succeeded(&ok));
        let err: ApiResult<()> = Err("no".into());
        assert!(!(&&&Select::<ApiResult<()>>::new())
            .__cachette_bust()
            .succeeded(&err));
    }

    #[test]
    fn a_generic_return_type_never_stores_a_result() {
        fn pick<R>() -> PlainMode {
            (&&&Select::<R>::new()).__cachette_mode()
        }
        let _: PlainMode = pick::<Result<u8, String>>();
        let err: Result<u8, String> = Err("no".into());
        assert!(<PlainMode as Mode<Result<u8, String>>>::cacheable(&err).is_none());
        assert!(<PlainMode as Mode<Option<u8>>>::cacheable(&Some(1)).is_none());
        assert_eq!(<PlainMode as Mode<u8>>::cacheable(&1), Some(&1));
        fn pick_result<T>() -> ResultMode {
            (&&&Select::<Result<T, String>>::new()).__cachette_mode()
        }
        let _: ResultMode = pick_result::<Option<u8>>();
        let none: Result<Option<u8>, String> = Ok(None);
        assert!(<ResultMode as Mode<Result<Option<u8>, String>>>::cacheable(&none).is_none());
        assert!(<ResultMode as Mode<Result<u8, String>>>::cacheable(&Ok(1)).is_some());
    }
}
