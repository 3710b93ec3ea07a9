//! The attributes of cachette: `#[cached]` and `#[invalidates]`.
//!
//! Use them through the `cachette` crate, which documents them; this crate
//! only turns the attributes into calls to its runtime.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod attr;
mod expand;
mod template;

use proc_macro::TokenStream;

/// Caches an async function's result in Redis or the embedded backend. See
/// the `cachette` crate for the options.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::run(expand::Kind::Cached, args.into(), item.into()).into()
}

/// Invalidates keys and tags after an async function succeeded. See the
/// `cachette` crate for the options.
#[proc_macro_attribute]
pub fn invalidates(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::run(expand::Kind::Invalidates, args.into(), item.into()).into()
}
