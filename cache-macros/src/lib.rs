//! The attributes of cachette: `#[cached]` and `#[invalidates]`.
//!
//! Use them through the `cachette` crate, which documents them; this crate
//! only turns the attributes into calls to its runtime.
//!
//! # How an attribute expands
//! In three steps (`expand/mod.rs`), so that every mistake is reported at
//! once and nothing is generated from a refused attribute:
//! 1. Lower. `lower::cached::from_ast` reads the arguments into
//!    `options::cached::CachedOptions` (`values.rs` reads each value), then
//!    checks them against the function (`async`, every parameter keyed or
//!    declared, the return type, the templates, the default key, the
//!    background refresh) into a `model::Cached`. `#[invalidates]` has its
//!    own: `lower::invalidates::from_ast`, `InvalidatesOptions`,
//!    `model::Invalidates`. Every error goes to a `ctxt::Ctxt` with its
//!    span, and the lowering goes on.
//! 2. Check. `Ctxt::check` returns every error recorded: the function is
//!    then emitted unchanged beside them.
//! 3. Generate. `expand/cached.rs` and `expand/invalidates.rs` write the
//!    wrapper from the model alone; `companions.rs` writes the companions
//!    of a `#[cached]` function.
//!
//! `#[cached_impl]` (`implblock.rs`) runs these steps for each method of
//! its impl block; `names!` (`names.rs`) and `tag!` (`tag.rs`) parse their
//! templates with `template.rs`, as the attributes do.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod batch;
mod companions;
mod ctxt;
mod expand;
mod implblock;
mod lower;
mod model;
mod names;
mod options;
#[cfg(test)]
mod snapshots;
mod spans;
mod tag;
mod template;
mod values;

use proc_macro::TokenStream;

/// Caches an async function's result in Redis or the embedded backend.
///
/// ```
/// use cachette::{cached, Cache};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Serialize, Deserialize)]
/// struct User { id: u64, name: String }
///
/// #[cached(key = "user:<id>", ttl = 300, tags = ["org:<org>"], cache = cache)]
/// async fn get_user(cache: &Cache, id: u64, org: &str) -> Result<User, std::io::Error> {
///     Ok(User { id, name: format!("member of {org}") }) // a database query
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = Cache::memory();
/// get_user(&cache, 42, "acme").await.unwrap(); // runs the body, fills
/// get_user(&cache, 42, "acme").await.unwrap(); // served from the cache
/// assert_eq!(cache.stats().hits, 1);
/// # }
/// ```
///
/// # Options
/// - `key = "user:<id>"`: the key template. `<param>` and `<param.field>`
///   (also `<self.field>`) interpolate the value's `Display` text, escaped so
///   that different arguments never share a key. Two placeholders must be
///   separated by a character such as `:`. Or a declared key
///   (`key = UserKey { id }`, see [`names!`]). Omitted: the function's full
///   path and every argument but `self`, the `cache` parameter and the
///   `unkeyed` ones.
/// - `unkeyed = [pool]`: parameters that do not change the result. Every
///   other parameter must appear in the key or the tags: one left out is a
///   compile error (calls differing only in it would share an entry).
/// - `not_a_transaction = [conn]`: `&mut` parameters that are not a
///   transaction whenever the function is called outside
///   `cachette::deferred`; a `&mut` parameter not listed is a compile
///   error (a read through a transaction that rolls back would be stored).
/// - `ttl = 300`, `ttl = "5m"` or `ttl = <expr>`: required; whole seconds,
///   a string with `ms`, `s`, `m`, `h`, `d` units (combinable: `"1h30m"`),
///   or any `Duration` expression, evaluated per call. Zero stores nothing.
/// - `ttl_fn = f`: `fn(&T) -> Duration`, a TTL per stored value.
/// - `unless = f`: `fn(&T) -> bool`; `true` returns the value unstored.
/// - `none_ttl = "30s"`: for `Option<T>` or `Result<Option<T>, E>`, caches
///   `None` for that long.
/// - `stale_if_error = "10m"`: for `Result<T, E>`, keeps entries that long
///   past their TTL and returns the last `Ok` value when the body fails, if
///   no invalidation reached the entry.
/// - `codec = "postcard"`, `version = 2`: the function's codec, and a
///   version recorded in its entries (another version's entries are misses).
/// - `tags_from = f`: tags derived from the stored value (see
///   `cachette::guide::attributes`).
/// - `tags = ["org:<org>"]`: tag templates, or declared tags
///   (`tags = [OrgTag { org }]`); `#[invalidates(tags = ...)]` or
///   `Cache::invalidate_tags` invalidates every entry with the tag.
/// - `strategy = "aside" | "lock" | "swr" | "early"`: see `cachette::guide::attributes`.
///   `stale_ttl` (swr), `lock_ttl` (lock, swr, early), `lock_wait` (lock) and
///   `beta` (early) tune them; they accept `"250ms"`-style durations.
/// - `cache = <expr>`: the cache, evaluated on each call (default: the
///   process-wide default, see `cachette::init`).
/// - `cache_none = true`: for `Option<T>` or `Result<Option<T>, E>`, cache
///   `None` too.
/// - `crate = "path"`: where `cachette` is, if it is re-exported.
///
/// # Return types
/// `Result<T, E>` caches `Ok` only; `Option<T>` caches `Some`, and
/// `Result<Option<T>, E>` caches `Ok(Some)` (both keep `None` with
/// `cache_none` or `none_ttl`); any other `T` is cached. `T: Serialize +
/// DeserializeOwned`. The function still returns its body's result when the
/// cache fails.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::run(expand::Kind::Cached, args.into(), item.into()).into()
}

/// Invalidates keys and tags after an async function succeeded, before it
/// returns to its caller.
///
/// ```
/// use cachette::{cached, invalidates, Cache};
///
/// #[cached(key = "user:<id>", ttl = 300, cache = cache)]
/// async fn name(cache: &Cache, id: u64) -> Result<String, String> {
///     Ok(format!("user {id}"))
/// }
///
/// #[invalidates(keys = ["user:<id>"], tags = ["org:<org>"], cache = cache)]
/// async fn rename(cache: &Cache, id: u64, org: &str) -> Result<(), String> {
///     Ok(()) // an UPDATE
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = Cache::memory();
/// name(&cache, 1).await.unwrap();
/// rename(&cache, 1, "acme").await.unwrap(); // user:1 and org:acme busted
/// name(&cache, 1).await.unwrap();           // runs the body again
/// assert_eq!(cache.stats().misses, 2);
/// # }
/// ```
///
/// # Options
/// `keys = [...]` and `tags = [...]` take templates rendered exactly as
/// `#[cached]` renders them, or declared names (see [`names!`]), from this
/// function's arguments, before the body runs. `calls =
/// [get_user(cache = cache, id = id)]` busts the key each call of a
/// `#[cached]` function would read, in the cache it would read; arguments
/// go by name (`param = value`, in any order), or are plain variables of the
/// parameters' names in their order, so two of one type cannot be swapped. `tags_from = f` adds the
/// tags `f` derives from the successful result (strings or declared tags),
/// `keys_from = f` the keys (strings or declared keys). `not_a_transaction =
/// [conn]` declares a `&mut` parameter that is not a transaction: without
/// it, a bust outside `cachette::deferred` by a function with a `&mut`
/// parameter is warned about once. `cache = <expr>` and `crate = "path"` as
/// for `#[cached]`.
///
/// # When it busts
/// For a `Result`, only after `Ok`; for any other return type, always. A bust
/// that fails is logged at `error` and counted in `Cache::stats().errors`;
/// the function's own result is returned.
#[proc_macro_attribute]
pub fn invalidates(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::run(expand::Kind::Invalidates, args.into(), item.into()).into()
}

/// Gives every `#[cached]` and `#[invalidates]` method of an impl block
/// one cache, and, on a trait's impl, a place for their companions.
///
/// ```
/// use cachette::{cached, cached_impl, invalidates, Cache};
///
/// struct Users {
///     cache: Cache,
/// }
///
/// #[cached_impl(cache = self.cache)]
/// impl Users {
///     #[cached(key = "user:<id>", ttl = 300)]
///     async fn name(&self, id: u64) -> Result<String, String> {
///         Ok(format!("user {id}"))
///     }
///
///     #[invalidates(calls = [self.name(id)])]
///     async fn rename(&self, id: u64) -> Result<(), String> {
///         Ok(()) // an UPDATE
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let users = Users { cache: Cache::memory() };
/// users.name(1).await.unwrap();
/// users.rename(1).await.unwrap();
/// users.name(1).await.unwrap(); // runs the body again
/// assert_eq!(users.cache.stats().misses, 2);
/// # }
/// ```
///
/// - `cache = <expr>` is the cache of every method that does not name its
///   own; it is evaluated in each method, so it may use `self`.
/// - The methods' attributes are recognized by the last segment of their
///   path (`cached`, `cachette::cached`, `invalidates`).
/// - On `impl Trait for Type`, the companions (`f_uncached`, `f_refresh`,
///   `f_key`) and the background refresh of `swr` and `early` cannot be
///   items of the trait's impl: they go to an inherent `impl Type` with the
///   same generics, which requires `Type` to be defined in this crate.
///   Without `#[cached_impl]`, `#[cached]` on a method of a trait impl is
///   refused by the compiler, first as "method
///   `f__in_a_trait_impl_needs_cached_impl` is not a member of trait":
///   add `#[cached_impl]` to the impl.
#[proc_macro_attribute]
pub fn cached_impl(args: TokenStream, item: TokenStream) -> TokenStream {
    implblock::run(args.into(), item.into()).into()
}

/// Declares keys and tags once, by name, for both the functions that read
/// them and those that bust them.
///
/// ```
/// use cachette::{cached, invalidates, names, Cache};
///
/// names! {
///     /// Every product of one category.
///     pub tag CategoryTag = "category:<tenant>:<category>";
///     pub key ProductKey = "product:<tenant>:<id>";
/// }
///
/// #[cached(key = ProductKey { tenant, id }, ttl = 60,
///          tags = [CategoryTag { tenant, category }], cache = cache)]
/// async fn product(cache: &Cache, tenant: &str, id: u64, category: &str) -> Option<String> {
///     Some(format!("product {id}"))
/// }
///
/// #[invalidates(tags = [CategoryTag { tenant, category }], cache = cache)]
/// async fn reprice(cache: &Cache, tenant: &str, category: &str) {}
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert_eq!(CategoryTag { tenant: "acme", category: "a b" }.to_string(), "category:acme:a%20b");
/// let cache = Cache::memory();
/// product(&cache, "acme", 1, "tools").await;
/// reprice(&cache, "acme", "tools").await;
/// product(&cache, "acme", 1, "tools").await; // busted: runs the body again
/// assert_eq!(cache.stats().misses, 2);
/// # }
/// ```
///
/// Each `tag Name = "template";` or `key Name = "template";` declares a
/// struct with one public field per placeholder (`<tenant>` is the field
/// `tenant`, of any `Display` type). Its value renders the name exactly as
/// the template would render in an attribute (same escaping), and is
/// written where a template string would be: `key = ...`, `tags = [...]`,
/// `keys = [...]`, or `.to_string()` for the `invalidate_*` methods. A
/// misspelled name or field, a missing field, or a key used as a tag, is a
/// compile error.
#[proc_macro]
pub fn names(input: TokenStream) -> TokenStream {
    names::run(input.into()).into()
}

/// A key or tag rendered from a template, exactly as `#[cached]` and
/// `#[invalidates]` render theirs (the same escaping, the same rule for long
/// names), for `tags_from`, the `invalidate_*` methods and `get_or_fetch`.
///
/// ```
/// let author = "Le Guin";
/// let id = 7;
/// assert_eq!(cachette::tag!("author:<name>", name = author), "author:Le%20Guin");
/// assert_eq!(cachette::tag!("book:<id>:<lang>", id = id, lang = "en"), "book:7:en");
/// // A value cannot reach outside its placeholder:
/// assert_eq!(cachette::tag!("org:<org>", org = "a:b"), "org:a%3Ab");
/// ```
///
/// Every placeholder (`<name>`, or `<name.field>`) must be given by name,
/// and every argument must be a placeholder: a typo is a compile error, not
/// a tag that silently never matches. Values are `Display`.
#[proc_macro]
pub fn tag(input: TokenStream) -> TokenStream {
    tag::run(input.into()).into()
}
