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

pub(crate) fn companions(func: &ItemFn, callee: &Callee<'_>, private: &TokenStream) -> TokenStream {
    let sig = &func.sig;
    let ident = &sig.ident;
    let vis = &func.vis;
    // The parameters, each a plain name, and the arguments that pass them.
    let mut params = Vec::new();
    let mut args = Vec::new();
    for (i, input) in sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(r) => {
                let mut r = r.clone();
                r.attrs.clear();
                r.mutability = None;
                params.push(quote!(#r));
                args.push(quote!(self));
            }
            FnArg::Typed(pt) => {
                let name = match &*pt.pat {
                    Pat::Ident(pi) if pi.subpat.is_none() => pi.ident.clone(),
                    _ => format_ident!("__cachette_arg{}", i),
                };
                let ty = &pt.ty;
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
    let name = ident.to_string();
    let doc_uncached =
        format!(" Runs `{name}`'s body without the cache: nothing is read, nothing is stored.");
    let doc_refresh = format!(
        " Runs `{name}`'s body and stores its result, as a miss does (the versions are \
         read before the body, so an invalidation made meanwhile is never overwritten); \
         returns the result."
    );
    let doc_key = format!(
        " The entry a call of `{name}` with these arguments reads: its cache and its key, \
         rendered exactly as `{name}` renders it. The body does not run."
    );
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
        #vis fn #key #generics (#(#params),*) -> #private::EntryKey #where_clause {
            #private::key_of(#call)
        }
    }
}
