//! The background refresh of `swr` and `early`: a closure that calls the
//! function again with owned copies of its arguments, carried as the
//! lowering found they can be (`model::Carried`).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ItemFn;

use crate::companions::Callee;
use crate::model::Carried;
use crate::spans::respan;

/// A closure that, called only when a background refresh is due, clones
/// the arguments and calls a hidden sibling function that returns a boxed,
/// owned future calling the function again.
///
/// The sibling exists so that the future's `Send` bound is checked outside
/// the function's own body, where its future type is still opaque.
pub(crate) struct Refresh {
    pub closure: TokenStream,
    pub sibling: TokenStream,
}

pub(crate) fn refresh(
    func: &ItemFn,
    carried: &[Carried<'_>],
    callee: &Callee<'_>,
    private: &TokenStream,
) -> Refresh {
    let ident = &func.sig.ident;
    let sibling_ident = syn::Ident::new(
        &format!("__cachette_refresh_{}", syn::ext::IdentExt::unraw(ident)),
        ident.span(),
    );
    let mut owned_args = Vec::new(); // what the closure passes
    let mut params = Vec::new(); // the sibling's parameters
    let mut call_args = Vec::new(); // what the sibling passes to the function
    let mut receiver = None;
    for arg in carried {
        match arg {
            Carried::SelfRef(self_span) => {
                // Through a trait that says why, at `self`.
                let at = Span::call_site().located_at(*self_span);
                let clone = respan(quote!(#private::refresh_clone), at);
                owned_args.push(quote_spanned!(at=> #clone(self)));
                params.push(quote!(__cachette_self: Self));
                receiver = Some(quote!(&__cachette_self));
            }
            Carried::SelfOwned(ty) => {
                let ty = match ty {
                    Some(ty) => quote!(#ty),
                    None => quote!(Self),
                };
                owned_args.push(quote!(::core::clone::Clone::clone(&self)));
                params.push(quote!(__cachette_self: #ty));
                receiver = Some(quote!(__cachette_self));
            }
            Carried::Borrowed(name, inner) => {
                owned_args.push(quote!(::std::borrow::ToOwned::to_owned(#name)));
                params.push(quote!(#name: <#inner as ::std::borrow::ToOwned>::Owned));
                call_args.push(quote!(&#name));
            }
            Carried::Owned(name, ty) => {
                owned_args.push(quote!(::core::clone::Clone::clone(&#name)));
                params.push(quote!(#name: #ty));
                call_args.push(quote!(#name));
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
    Refresh {
        closure: quote!(|| #target(#(#owned_args),*)),
        sibling,
    }
}
