//! The wrapper of an `#[invalidates]` function, from its model: it renders
//! its keys and tags as `#[cached]` renders them, before the body, arms
//! `__private::invalidation` (which keeps the bust if the call is dropped
//! midway), awaits the body, then busts when it succeeded.

use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::shared::{cache_binding, name_expr, preamble, private, through_mut, wrapper, Expanded};
use crate::model::Invalidates;

pub(crate) fn generate(m: &Invalidates<'_>) -> Expanded {
    let (function, opts) = (&m.function, &m.opts);
    let func = function.func;
    let private = private(opts.common.krate.as_ref());
    let ret_ty = match m.ret {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    };
    let block = &func.block;
    let key_exprs = m.keys.iter().map(|t| name_expr(t, &private, true));
    let tag_exprs = m.tags.iter().map(|t| name_expr(t, &private, false));
    let calls = &m.calls;
    let transaction = match &m.transaction {
        Some(t) => quote!(::core::option::Option::Some(#t)),
        None => through_mut(&function.opaque, &private),
    };
    // Tags from the result, once it is known to have succeeded.
    let derive = opts.common.tags_from.as_ref().map(|f| {
        quote_spanned! {f.span()=>
            if let ::core::option::Option::Some(__cachette_value) =
                #private::BustWhen::success(&__cachette_when, &__cachette_ret)
            {
                __cachette_bust.add_tags(&#private::derived_tags(__cachette_value, #f));
            }
        }
    });
    let derive_keys = opts.keys_from.as_ref().map(|f| {
        quote_spanned! {f.span()=>
            if let ::core::option::Option::Some(__cachette_value) =
                #private::BustWhen::success(&__cachette_when, &__cachette_ret)
            {
                __cachette_bust.add_keys(&#private::derived_keys(__cachette_value, #f));
            }
        }
    });
    let n_calls = opts.calls.len();
    let preamble = preamble(function, &private);
    // Only `calls`: each names its own cache; the function needs none.
    let (cache, own) = if m.keys.is_empty()
        && m.tags.is_empty()
        && opts.common.tags_from.is_none()
        && opts.keys_from.is_none()
    {
        (quote!(), quote!(::core::option::Option::None))
    } else {
        (
            cache_binding(opts.common.cache.as_ref(), &private),
            quote!(::core::option::Option::Some(__cachette_cache)),
        )
    };
    let body = quote! {
        #preamble
        #cache
        let __cachette_keys = [#(#key_exprs),*];
        let __cachette_tags = [#(#tag_exprs),*];
        let __cachette_calls: ::std::vec::Vec<#private::EntryKey> = {
            #[allow(unused_mut)]
            let mut __cachette_calls = ::std::vec::Vec::with_capacity(#n_calls);
            #(#private::entry_keys(&mut __cachette_calls, #calls);)*
            __cachette_calls
        };
        #[allow(unused_mut)]
        let mut __cachette_bust = #private::invalidation(
            #own,
            &__cachette_fn,
            &__cachette_keys,
            &__cachette_tags,
            &__cachette_calls,
            #transaction,
        );
        let __cachette_ret: #ret_ty =
            async { let __cachette_ret: #ret_ty = #block; __cachette_ret }.await;
        let __cachette_when = (&&&#private::Select::<#ret_ty>::new()).__cachette_bust();
        let __cachette_ok = __cachette_when.succeeded(&__cachette_ret);
        #derive
        #derive_keys
        __cachette_bust.finish(__cachette_ok).await;
        __cachette_ret
    };
    Expanded {
        item: wrapper(func, body),
        siblings: quote!(),
    }
}
