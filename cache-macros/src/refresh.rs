//! The background refresh of `swr` and `early`: a closure that calls the
//! function again with owned copies of its arguments.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Pat, Type};

use crate::companions::Callee;
use crate::values::Errors;

/// For swr and early: a closure that, called only when a background
/// refresh is due, clones the arguments and calls a hidden sibling function
/// that returns a boxed, owned future calling the function again.
///
/// The sibling exists so that the future's `Send` bound is checked outside
/// the function's own body, where its future type is still opaque.
pub(crate) struct Refresh {
    pub closure: TokenStream,
    pub sibling: TokenStream,
}

pub(crate) fn refresh(
    func: &ItemFn,
    callee: &Callee<'_>,
    private: &TokenStream,
    errors: &mut Errors,
) -> Option<Refresh> {
    let ident = &func.sig.ident;
    let sibling_ident = syn::Ident::new(
        &format!("__cachette_refresh_{}", syn::ext::IdentExt::unraw(ident)),
        ident.span(),
    );
    let mut owned_args = Vec::new(); // what the closure passes
    let mut params = Vec::new(); // the sibling's parameters
    let mut call_args = Vec::new(); // what the sibling passes to the function
    let mut receiver = None;
    for input in &func.sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                let (clone, ty) = match &r.kind {
                    syn::ReceiverKind::Reference(_, _, Some(_)) => {
                        errors.at(
                            r.self_token.span,
                            "swr and early refresh in the background and cannot borrow `&mut self`",
                        );
                        return None;
                    }
                    syn::ReceiverKind::Reference(..) => {
                        // Through a trait that says why, at `self`.
                        let at = proc_macro2::Span::call_site().located_at(r.self_token.span);
                        let clone = crate::spans::respan(quote!(#private::refresh_clone), at);
                        (quote_spanned!(at=> #clone(self)), quote!(Self))
                    }
                    syn::ReceiverKind::Typed(_, ty) => {
                        (quote!(::core::clone::Clone::clone(&self)), quote!(#ty))
                    }
                    _ => (quote!(::core::clone::Clone::clone(&self)), quote!(Self)),
                };
                owned_args.push(clone);
                params.push(quote!(__cachette_self: #ty));
                receiver = Some(match &r.kind {
                    syn::ReceiverKind::Reference(..) => quote!(&__cachette_self),
                    _ => quote!(__cachette_self),
                });
            }
            FnArg::Typed(pt) => {
                let Pat::Ident(pi) = &*pt.pat else {
                    errors.at(
                        pt.pat.span(),
                        "swr and early need plain parameter names, to call the function again when refreshing",
                    );
                    return None;
                };
                let name = &pi.ident;
                match &*pt.ty {
                    Type::Reference(r) if r.mutability.is_some() => {
                        errors.at(
                            r.and_token.span,
                            "swr and early refresh in the background and cannot take `&mut` parameters",
                        );
                        return None;
                    }
                    Type::Reference(r) => {
                        let inner = &r.elem;
                        owned_args.push(quote!(::std::borrow::ToOwned::to_owned(#name)));
                        params.push(quote!(#name: <#inner as ::std::borrow::ToOwned>::Owned));
                        call_args.push(quote!(&#name));
                    }
                    ty => {
                        owned_args.push(quote!(::core::clone::Clone::clone(&#name)));
                        params.push(quote!(#name: #ty));
                        call_args.push(quote!(#name));
                    }
                }
            }
        }
    }
    let path = callee.path(func);
    let call = match receiver {
        Some(receiver) => quote!(#path(#receiver, #(#call_args),*)),
        None => quote!(#path(#(#call_args),*)),
    };
    let target = match callee {
        Callee::Free => quote!(#sibling_ident),
        _ => quote!(Self::#sibling_ident),
    };
    let (impl_generics, _, where_clause) = func.sig.generics.split_for_impl();
    let sibling = quote! {
        #[doc(hidden)]
        #[allow(clippy::all, non_snake_case)]
        fn #sibling_ident #impl_generics (#(#params),*)
            -> ::core::pin::Pin<::std::boxed::Box<dyn ::core::future::Future<Output = ()> + ::core::marker::Send>>
        #where_clause
        {
            ::std::boxed::Box::pin(async move {
                let _ = #call.await;
            })
        }
    };
    Some(Refresh {
        closure: quote!(|| #target(#(#owned_args),*)),
        sibling,
    })
}
