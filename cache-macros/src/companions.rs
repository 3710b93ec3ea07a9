//! The companions of a `#[cached]` function `f`, generated beside it with
//! its visibility: `f_uncached` (the body alone), `f_refresh` (the body,
//! then a fill) and `f_key` (the entry a call reads, for
//! `#[invalidates(calls = [...])]`). Each takes `f`'s parameters and calls
//! `f` itself, so that they cannot disagree with it: the runtime tells
//! `f`'s wrapper what the companion asks.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{FnArg, GenericParam, ItemFn, Pat, ReturnType};

/// How the companions name `f`: a free function, an associated function
/// (`Self::f`), or the method of a trait impl (`<Self as Trait>::f`).
pub(crate) enum Callee<'a> {
    Free,
    Associated,
    Trait(&'a syn::Path),
}

impl Callee<'_> {
    /// The path that calls `func` from beside it, with explicit generic
    /// arguments, so that a type parameter that only the return type names
    /// is known too.
    pub(crate) fn path(&self, func: &ItemFn) -> TokenStream {
        let ident = &func.sig.ident;
        let generic: Vec<TokenStream> = func
            .sig
            .generics
            .params
            .iter()
            .filter_map(|p| match p {
                GenericParam::Type(t) => {
                    let id = &t.ident;
                    Some(quote!(#id))
                }
                GenericParam::Const(c) => {
                    let id = &c.ident;
                    Some(quote!(#id))
                }
                GenericParam::Lifetime(_) => None,
            })
            .collect();
        let turbofish = if generic.is_empty() {
            quote!()
        } else {
            quote!(::<#(#generic),*>)
        };
        match self {
            Callee::Free => quote!(#ident #turbofish),
            Callee::Associated => quote!(Self::#ident #turbofish),
            Callee::Trait(t) => quote!(<Self as #t>::#ident #turbofish),
        }
    }
}

/// The suffix of the companion that names an entry (`f_key`).
pub(crate) const KEY_SUFFIX: &str = "_key";

/// The hidden key companions of `f` for `calls` of several arguments (see
/// `lower/calls.rs`), named after `f`'s parameters, each after its
/// length so that no two lists of names give one name: `f_key_by_2id_3org`
/// takes them by name (sorted), `f_key_in_3org_2id` in `f`'s order, so that
/// it exists only for the names in that order.
pub(crate) fn by_name(f: &syn::Ident, sorted: &[&str]) -> syn::Ident {
    listed(f, "by", sorted)
}

/// See [`by_name`].
pub(crate) fn in_order(f: &syn::Ident, names: &[&str]) -> syn::Ident {
    listed(f, "in", names)
}

fn listed(f: &syn::Ident, how: &str, names: &[&str]) -> syn::Ident {
    let mut name = format!("{}_key_{how}", syn::ext::IdentExt::unraw(f));
    for n in names {
        name.push_str(&format!("_{}{n}", n.len()));
    }
    syn::Ident::new(&name, Span::call_site().located_at(f.span()))
}

pub(crate) fn companions(
    func: &ItemFn,
    callee: &Callee<'_>,
    private: &TokenStream,
    batch: bool,
) -> TokenStream {
    // A batch function's key companion names one entry per element.
    let (key_ty, key_of) = if batch {
        (
            quote!(::std::vec::Vec<#private::EntryKey>),
            quote!(#private::keys_of),
        )
    } else {
        (quote!(#private::EntryKey), quote!(#private::key_of))
    };
    let sig = &func.sig;
    let ident = &sig.ident;
    let vis = &func.vis;
    // The parameters, each a plain name, and the arguments that pass them.
    let mut params = Vec::new();
    let mut args = Vec::new();
    // The named parameters, for the companion that takes them by name.
    let mut receiver = None;
    let mut by_name: Option<Vec<(String, TokenStream)>> = Some(Vec::new());
    for (i, input) in sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(r) => {
                let mut r = r.clone();
                r.attrs.clear();
                r.mutability = None;
                receiver = Some(quote!(#r));
                params.push(quote!(#r));
                args.push(quote!(self));
            }
            FnArg::Typed(pt) => {
                let name = match &*pt.pat {
                    Pat::Ident(pi) if pi.subpat.is_none() => pi.ident.clone(),
                    _ => {
                        by_name = None;
                        format_ident!("__cachette_arg{}", i)
                    }
                };
                let ty = &pt.ty;
                if let Some(list) = &mut by_name {
                    list.push((
                        syn::ext::IdentExt::unraw(&name).to_string(),
                        quote!(#name: #ty),
                    ));
                }
                params.push(quote!(#name: #ty));
                args.push(quote!(#name));
            }
        }
    }
    let path = callee.path(func);
    let call = quote!(#path(#(#args),*));
    let (generics, where_clause) = (&sig.generics, &sig.generics.where_clause);
    let output = match &sig.output {
        ReturnType::Default => quote!(),
        ReturnType::Type(arrow, ty) => quote!(#arrow #ty),
    };
    let uncached = format_ident!(
        "{}_uncached",
        ident,
        span = Span::call_site().located_at(ident.span())
    );
    let refresh = format_ident!(
        "{}_refresh",
        ident,
        span = Span::call_site().located_at(ident.span())
    );
    let key = format_ident!(
        "{}{}",
        ident,
        KEY_SUFFIX,
        span = Span::call_site().located_at(ident.span())
    );
    // By name and in order, for `calls` of several arguments.
    let by_name = by_name.filter(|list| !list.is_empty()).map(|list| {
        let mut sorted = list.clone();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let declared: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
        let names: Vec<&str> = sorted.iter().map(|(n, _)| n.as_str()).collect();
        let (by, inn) = (self::by_name(ident, &names), in_order(ident, &declared));
        let sorted_params = receiver.iter().chain(sorted.iter().map(|(_, p)| p));
        let declared_params = receiver.iter().chain(list.iter().map(|(_, p)| p));
        quote! {
            #[doc(hidden)]
            #[allow(clippy::all, clippy::pedantic, unused_mut, non_snake_case)]
            #vis fn #by #generics (#(#sorted_params),*) -> #key_ty #where_clause {
                #key_of(#call)
            }
            #[doc(hidden)]
            #[allow(clippy::all, clippy::pedantic, unused_mut, non_snake_case)]
            #vis fn #inn #generics (#(#declared_params),*) -> #key_ty #where_clause {
                #key_of(#call)
            }
        }
    });
    let name = ident.to_string();
    let doc_uncached =
        format!(" Runs `{name}`'s body without the cache: nothing is read, nothing is stored.");
    let doc_refresh = format!(
        " Runs `{name}`'s body and stores its result, as a miss does (the versions are \
         read before the body, so an invalidation made meanwhile is never overwritten); \
         returns the result."
    );
    let doc_key = if batch {
        format!(
            " The entries a call of `{name}` with these arguments reads, one per element (each \
             once, in order): their cache and keys, rendered exactly as `{name}` renders them. \
             The body does not run."
        )
    } else {
        format!(
            " The entry a call of `{name}` with these arguments reads: its cache and its key, \
             rendered exactly as `{name}` renders it. The body does not run."
        )
    };
    quote! {
        #[doc = #doc_uncached]
        #[allow(clippy::all, clippy::pedantic, unused_mut)]
        #vis async fn #uncached #generics (#(#params),*) #output #where_clause {
            #private::companion(#private::Companion::Uncached, #call).await
        }
        #[doc = #doc_refresh]
        #[allow(clippy::all, clippy::pedantic, unused_mut)]
        #vis async fn #refresh #generics (#(#params),*) #output #where_clause {
            #private::companion(#private::Companion::Refresh, #call).await
        }
        #[doc = #doc_key]
        #[allow(clippy::all, clippy::pedantic, unused_mut)]
        #vis fn #key #generics (#(#params),*) -> #key_ty #where_clause {
            #key_of(#call)
        }
        #by_name
    }
}

#[cfg(test)]
mod tests {
    /// No two lists of names give one companion: `{X_, cache}` and
    /// `{X, _cache}` would both join as `X___cache`.
    #[test]
    fn companions_by_name_never_collide() {
        let f = syn::Ident::new("pair", proc_macro2::Span::call_site());
        let a = super::by_name(&f, &["X_", "cache", "y"]);
        let b = super::by_name(&f, &["X", "_cache", "y"]);
        assert_ne!(a.to_string(), b.to_string());
        assert_ne!(
            super::in_order(&f, &["a", "b"]).to_string(),
            super::in_order(&f, &["b", "a"]).to_string()
        );
        let raw = syn::Ident::new_raw("match", proc_macro2::Span::call_site());
        assert_eq!(
            super::by_name(&raw, &["id"]).to_string(),
            "match_key_by_2id"
        );
    }
}
