//! What the wrappers of both attributes generate alike: the path of the
//! runtime, the preamble that names the function and binds its cache, the
//! rendering of a key or tag, the wrapper around the body.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, Ident, ItemFn};

use crate::model::{Function, Rendered};
use crate::spans::{render_call, respan};

/// The function, and what goes beside it (companions, the refresh).
pub(crate) struct Expanded {
    pub item: TokenStream,
    pub siblings: TokenStream,
}

/// `func` with `body` for its body.
pub(crate) fn wrapper(func: &ItemFn, body: TokenStream) -> TokenStream {
    let attrs = &func.attrs;
    let vis = &func.vis;
    let sig = &func.sig;
    quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    }
}

/// `cachette::__private`, or the same under `crate = "..."`.
pub(crate) fn private(krate: Option<&syn::Path>) -> TokenStream {
    let krate = krate
        .map(ToTokens::to_token_stream)
        .unwrap_or_else(|| quote!(::cachette));
    quote!(#krate::__private)
}

/// The imports of the selector traits and `__cachette_fn`, this
/// function. The traits pick the mode by what the return type is, through
/// any alias; the closure names this function and its generic arguments,
/// and the hash of its code (attribute included) tells apart functions
/// that share a path.
pub(crate) fn preamble(function: &Function<'_>, private: &TokenStream) -> TokenStream {
    preamble_of(function, private, None)
}

/// [`preamble`], with `__cachette_fn` from `entries_of`'s hidden function
/// when given (a batch function and its linked single-key function).
pub(crate) fn preamble_of(
    function: &Function<'_>,
    private: &TokenStream,
    entries_of: Option<&Ident>,
) -> TokenStream {
    let code = code_hash(function.attr_text, function.func);
    let named = match entries_of {
        Some(batch) => {
            let f = crate::batch::entries_fn(batch);
            quote!(#f())
        }
        None => quote!(#private::function(&|| (), #code)),
    };
    quote! {
        #[allow(unused_imports)]
        use #private::{
            BustWhen as _, KeepClone as _, KeepDecoding as _, SelectOption as _, SelectPlain as _,
            SelectResult as _, SelectResultOption as _,
        };
        let __cachette_fn = #named;
    }
}

/// The hidden function naming a batch function's entries, for it and its
/// linked single-key function: its path and a hash of its code.
pub(crate) fn entries_fn(function: &Function<'_>, private: &TokenStream) -> TokenStream {
    let func = function.func;
    let ident = syn::ext::IdentExt::unraw(&func.sig.ident).to_string();
    let code = code_hash(function.attr_text, func);
    let f = crate::batch::entries_fn(&func.sig.ident);
    let vis = &func.vis;
    let label = format!("::{ident}");
    let identity = format!("::{ident}#{code}");
    quote! {
        #[doc(hidden)]
        #[allow(non_snake_case, dead_code)]
        #vis fn #f() -> #private::Function {
            #private::function_named(
                ::core::concat!(::core::module_path!(), #label),
                ::core::concat!(::core::module_path!(), #identity),
            )
        }
    }
}

/// `__cachette_cache`: the cache given, or the default one.
pub(crate) fn cache_binding(cache: Option<&Expr>, private: &TokenStream) -> TokenStream {
    let cache = match cache {
        Some(expr) => quote_spanned!(expr.span()=> &(#expr)),
        None => quote!(&#private::default_cache(&__cachette_fn)),
    };
    quote! {
        let __cachette_cache: &#private::Cache = #cache;
    }
}

/// Which arguments of a type that may be a `&mut` are one, found when
/// called.
pub(crate) fn through_mut(opaque: &[Ident], private: &TokenStream) -> TokenStream {
    if opaque.is_empty() {
        quote!(::core::option::Option::None)
    } else {
        let names = opaque.iter().map(|i| i.to_string());
        let idents = opaque.iter();
        quote!(#private::mut_argument(&[#((#names, #private::is_mut_ref(&#idents))),*]))
    }
}

/// The expression of a rendered name; `key` for a key, else a tag.
pub(crate) fn name_expr(rendered: &Rendered, private: &TokenStream, key: bool) -> TokenStream {
    match rendered {
        Rendered::Template(t) => render_call(t, private),
        Rendered::Named(s) => {
            let at = Span::call_site().located_at(s.span());
            let f = if key {
                respan(quote!(#private::key_name), at)
            } else {
                respan(quote!(#private::tag_name), at)
            };
            quote_spanned!(at=> #f(&#s))
        }
    }
}

/// The part of a semver version that two versions share when they are
/// compatible: the major version, or `0.minor` (`0.0.patch`) below 1.
fn compatible(version: &str) -> &str {
    let mut ends = version.match_indices('.').map(|(i, _)| i);
    let (first, second) = (ends.next(), ends.next());
    let end = match (version.split('.').next(), version.split('.').nth(1)) {
        (Some("0"), Some("0")) => version.find(['-', '+']).unwrap_or(version.len()),
        (Some("0"), _) => second.unwrap_or(version.len()),
        _ => first.unwrap_or(version.len()),
    };
    &version[..end]
}

/// A hash of the function's code and attribute, in hex: stable for one
/// compiler, different for any change of signature, body or options.
fn code_hash(attr: &str, func: &ItemFn) -> String {
    // The crate's semver-compatible version joins the code: two
    // incompatible versions of one crate in one build give their types and
    // functions the same paths (`type_name` says no version), and must not
    // share entries (I11).
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    // FNV-1a, 64 bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in attr
        .bytes()
        .chain([0])
        .chain(func.to_token_stream().to_string().bytes())
        .chain([0])
        .chain(compatible(&version).bytes())
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn compatible_versions_share_their_part() {
        assert_eq!(super::compatible("1.2.3"), "1");
        assert_eq!(super::compatible("2.0.0"), "2");
        assert_eq!(super::compatible("0.4.1"), "0.4");
        assert_eq!(super::compatible("0.0.7"), "0.0.7");
        assert_eq!(super::compatible("0.0.7-rc.1"), "0.0.7");
        assert_eq!(super::compatible(""), "");
    }
}
