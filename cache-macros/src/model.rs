//! The model of each attribute: what `lower/` has checked of the options
//! and the function together, and all that `expand/` reads to generate.
//! A model exists only when no error was recorded: every key and tag is
//! parsed, the return type suits the options, the default key and the
//! background refresh can be written.

use proc_macro2::Span;
use syn::{Expr, Ident, ItemFn, Type};

use crate::companions::Callee;
use crate::options::cached::CachedOptions;
use crate::options::invalidates::InvalidatesOptions;
use crate::template::Template;

/// What both attributes know of the function.
pub(crate) struct Function<'a> {
    pub func: &'a ItemFn,
    /// The attribute's arguments as written (they join the code's hash).
    pub attr_text: &'a str,
    /// How what is generated beside the function calls it.
    pub callee: Callee<'a>,
    /// The function is an item of a `#[cached_impl]` block.
    pub in_impl: bool,
    /// The parameters of a type that may be a `&mut` (a type parameter, an
    /// alias), not declared `not_a_transaction`: checked when called.
    pub opaque: Vec<Ident>,
}

/// A `#[cached]` function.
pub(crate) struct Cached<'a> {
    pub function: Function<'a>,
    /// Its options; `cache` is the impl's when the attribute names none.
    pub opts: CachedOptions,
    pub key: Key,
    pub tags: Vec<Rendered>,
    /// The return type: owned, and suited to the options where its
    /// spelling tells.
    pub ret: &'a Type,
    /// `swr` and `early`: how the background refresh carries each argument.
    pub refresh: Option<Vec<Carried<'a>>>,
    /// A batch function (`batch = "id in ids"`).
    pub batch: Option<crate::batch::Batch>,
}

/// An `#[invalidates]` function.
pub(crate) struct Invalidates<'a> {
    pub function: Function<'a>,
    /// Its options; `cache` is the impl's when the attribute names none.
    pub opts: InvalidatesOptions,
    pub keys: Vec<Rendered>,
    pub tags: Vec<Rendered>,
    /// Each of `calls`, rewritten to call the key companion that names its
    /// entry.
    pub calls: Vec<Expr>,
    /// The first `&mut` parameter not declared `not_a_transaction`.
    pub transaction: Option<String>,
    /// The return type; `None` for `()`.
    pub ret: Option<&'a Type>,
}

/// A key or tag, checked: a template, or a declared name's value.
pub(crate) enum Rendered {
    Template(Template),
    Named(syn::ExprStruct),
}

/// The key of a `#[cached]` function.
pub(crate) enum Key {
    /// `key = ...`.
    Written(Rendered),
    /// Omitted: the function's path and these parameters (every one but
    /// `self`, the cache's and the unkeyed ones), each with its span.
    Default(Vec<(Ident, Span)>),
}

/// How the background refresh of `swr` and `early` carries one argument
/// into a call made after the function returned.
pub(crate) enum Carried<'a> {
    /// `&self`, cloned; the span is `self`'s.
    SelfRef(Span),
    /// `self`, or `self: Type` (`None` for `Self`), cloned.
    SelfOwned(Option<&'a Type>),
    /// `name: &T`, made owned.
    Borrowed(&'a Ident, &'a Type),
    /// `name: T`, cloned.
    Owned(&'a Ident, &'a Type),
}
