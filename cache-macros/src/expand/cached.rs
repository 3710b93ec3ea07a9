//! The wrapper of a `#[cached]` function, from its model.
//!
//! Input:
//! ```text
//! #[cached(key = "user:<id>", ttl = 300, tags = ["org:<org>"])]
//! async fn get_user(id: u64, org: &str) -> Result<User, DbError> { BODY }
//! ```
//! Output (paths shortened; `P` is `::cachette::__private`):
//! ```text
//! async fn get_user(id: u64, org: &str) -> Result<User, DbError> {
//!     const __CACHETTE_POLICY: P::Policy = P::Policy::new(P::Strategy::Aside, P::ms(300000));
//!     use P::{BustWhen as _, SelectOption as _, SelectPlain as _, SelectResult as _};
//!     let __cachette_fn = P::function(&|| ());        // this function, with its generics
//!     let __cachette_cache: &P::Cache = &P::default_cache(&__cachette_fn);
//!     let __cachette_key = P::render(&["user:", ""], &[&id as &dyn Display]);
//!     let __cachette_tags = [P::render(&["org:", ""], &[&org as &dyn Display])];
//!     P::cached(
//!         P::Site { cache: __cachette_cache, policy: &__CACHETTE_POLICY, function: __cachette_fn },
//!         (&&&P::Select::<Result<User, DbError>>::new()).__cachette_mode(), // caches Ok only
//!         &__cachette_key, &__cachette_tags,
//!         async { let __cachette_ret: Result<User, DbError> = { BODY }; __cachette_ret },
//!     ).await
//! }
//! ```
//! Beside it: the companions, the refresh's sibling (`swr`, `early`), and,
//! for a method outside `#[cached_impl]`, a marker that names the fix if
//! the method is in a trait's impl.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, FnArg, Ident};

use super::refresh::{refresh, Refresh};
use super::shared::{
    cache_binding, entries_fn, name_expr, preamble_of, private, through_mut, wrapper, Expanded,
};
use crate::batch::Batch;
use crate::companions::companions;
use crate::model::Rendered;
use crate::model::{Cached, Key};
use crate::options::cached::{CachedOptions, Strategy};
use crate::spans::respan;
use crate::values::Name;

pub(crate) fn generate(m: &Cached<'_>) -> Expanded {
    if let Some(batch) = &m.batch {
        return generate_batch(m, batch);
    }
    let (function, opts) = (&m.function, &m.opts);
    let func = function.func;
    let private = private(opts.common.krate.as_ref());
    let ret = m.ret;
    let ret_ty = quote!(#ret);
    let block = &func.block;
    let tag_exprs = m.tags.iter().map(|t| name_expr(t, &private, false));
    let preamble = preamble_of(function, &private, None);
    let cache = cache_binding(opts.common.cache.as_ref(), &private);
    let through_mut = through_mut(&function.opaque, &private);
    let refresh = m
        .refresh
        .as_ref()
        .map(|carried| refresh(func, carried, &function.callee, &private));
    let key = match &m.key {
        Key::Written(t) => name_expr(t, &private, true),
        Key::Default(params) => default_key(params, &private),
    };
    // `none_ttl` caches `None` too (and checks the type itself).
    let (mode, check) = match (opts.cache_none, opts.none_ttl) {
        (Some(span), _) => (
            quote!(__cachette_mode_none),
            quote_spanned!(span=> #private::cache_none_applies::<#ret_ty>();),
        ),
        (None, Some(_)) => (quote!(__cachette_mode_none), quote!()),
        (None, None) => (quote!(__cachette_mode), quote!()),
    };
    let check = match opts.stale_if_error {
        Some((_, span)) => {
            let applies = respan(quote!(#private::stale_if_error_applies), span);
            quote! {
                #check
                #applies::<#ret_ty>();
            }
        }
        None => check,
    };
    // `swr` and `stale_if_error` need "not found" stored.
    let stale_at = match (opts.strategy, opts.stale_if_error) {
        (_, Some((_, span))) => Some(span),
        (Strategy::Swr, None) => Some(opts.strategy_span.unwrap_or_else(Span::call_site)),
        _ => None,
    };
    let serves_stale = stale_at.map(|span| {
        let at = Span::call_site().located_at(span);
        let applies = respan(quote!(#private::serves_stale_applies), at);
        quote_spanned!(at=> #applies(&__cachette_mode);)
    });
    let policy = policy(opts, &private);
    // Located at the return type, so that a value type that cannot be
    // stored is reported there; resolved at the call site, like every
    // other token the attribute writes.
    let at = Span::call_site().located_at(ret.span());
    let (hooks, hooks_arg) = hooks(opts, ret_ty.clone(), &private);
    // A TTL from an expression: the policy of this call.
    let (policy_local, policy_ref) = match &opts.ttl_expr {
        Some(ttl) => {
            let at = Span::call_site().located_at(ttl.span());
            let with_ttl = respan(quote!(__CACHETTE_POLICY.with_ttl), at);
            (
                quote_spanned!(at=> let __cachette_policy: #private::Policy = #with_ttl(#ttl);),
                quote!(__cachette_policy),
            )
        }
        None => (quote!(), quote!(__CACHETTE_POLICY)),
    };
    let refresh_arg = match &refresh {
        Some(Refresh {
            closure: refresh, ..
        }) => quote!(::core::option::Option::Some(#refresh)),
        None => quote!(#private::no_refresh()),
    };
    let callee = respan(quote!(#private::cached), at);
    // The return type keeps its own spans (it may come from a macro).
    let (open, close) = (
        respan(quote!(&&&#private::Select::<), at),
        respan(quote!(>::new()), at),
    );
    let mut select = proc_macro2::Group::new(
        proc_macro2::Delimiter::Parenthesis,
        quote!(#open #ret_ty #close),
    );
    select.set_span(at);
    let then_mode = respan(quote!(.#mode()), at);
    let mode_expr = quote!(#select #then_mode);
    // Values of a `Clone` type are kept decoded (see the runtime's
    // `keep.rs`): selected here, where the type is concrete.
    let probe = respan(quote!(#private::keep_probe::<_,), at);
    let keeper = quote!((&&#probe #ret_ty>(&__cachette_mode)).__cachette_keeper());
    let mode_and_keeper = respan(quote!(__cachette_mode, __cachette_keep), at);
    let mut args = proc_macro2::Group::new(
        proc_macro2::Delimiter::Parenthesis,
        quote! {
            #private::Site {
                cache: __cachette_cache,
                policy: &#policy_ref,
                function: __cachette_fn,
                through_mut: #through_mut,
            },
            #mode_and_keeper,
            &__cachette_key,
            &__cachette_tags,
            #hooks_arg,
            async { let __cachette_ret: #ret_ty = #block; __cachette_ret },
            #refresh_arg
        },
    );
    args.set_span(at);
    let call_expr = quote!(#callee #args);
    // With `hard_timeout`: the call within it, its error made from
    // `Elapsed` (checked where the option was written).
    let call_expr = match opts.hard_timeout {
        Some((_, span)) => {
            let within = respan(
                quote!(#private::hard_timeout::<#ret_ty>),
                Span::call_site().located_at(span),
            );
            quote! {
                #within(__cachette_cache, &#policy_ref, __cachette_fn, #call_expr)
            }
        }
        None => call_expr,
    };
    let call_expr = quote_spanned!(at=> #call_expr.await);
    let body = quote! {
        const __CACHETTE_POLICY: #private::Policy = #policy;
        #preamble
        #cache
        #check
        let __cachette_key: ::std::string::String = #key;
        let __cachette_mode = #mode_expr;
        #serves_stale
        let __cachette_keep = #keeper;
        let __cachette_tags = [#(#tag_exprs),*];
        #policy_local
        #hooks
        #call_expr
    };
    let sibling = refresh.map(|r| r.sibling);
    let companions = companions(func, &function.callee, &private, false);
    let marker = marker(m);
    Expanded {
        item: wrapper(func, body),
        siblings: quote!(#marker #sibling #companions),
    }
}

/// A batch function's wrapper: each element's key and tags rendered, the
/// body given the elements that missed; beside it, the hidden function
/// that names its entries, its companions, and its linked single-key
/// function (`one`).
fn generate_batch(m: &Cached<'_>, b: &Batch) -> Expanded {
    let (function, opts) = (&m.function, &m.opts);
    let func = function.func;
    let private = private(opts.common.krate.as_ref());
    let ret = m.ret;
    let ret_ty = quote!(#ret);
    let block = &func.block;
    let preamble = preamble_of(function, &private, Some(&func.sig.ident));
    let cache = cache_binding(opts.common.cache.as_ref(), &private);
    let through_mut = through_mut(&function.opaque, &private);
    let key = match &m.key {
        Key::Written(t) => name_expr(t, &private, true),
        Key::Default(_) => unreachable!("a batch function's key is checked to be written"),
    };
    // Tags that do not name the element are rendered once per call.
    let names_element = |r: &Rendered| {
        crate::lower::params::roots(r)
            .iter()
            .any(|root| b.element == root.as_str())
    };
    let fixed: Vec<TokenStream> = m
        .tags
        .iter()
        .filter(|t| !names_element(t))
        .map(|t| name_expr(t, &private, false))
        .collect();
    let mut nth_fixed = 0usize;
    let tag_exprs: Vec<TokenStream> = m
        .tags
        .iter()
        .map(|t| {
            if names_element(t) {
                name_expr(t, &private, false)
            } else {
                let i = syn::Index::from(nth_fixed);
                nth_fixed += 1;
                quote!(::core::clone::Clone::clone(&__cachette_fixed_tags[#i]))
            }
        })
        .collect();
    let n_fixed = fixed.len();
    let at = Span::call_site().located_at(ret.span());
    let item_ty = respan(
        quote!(::core::option::Option<<#ret_ty as #private::BatchReturn>::Value>),
        at,
    );
    // "Not found" is stored as `None` with `none_ttl` or `cache_none`.
    let mode = if opts.none_ttl.is_some() || opts.cache_none.is_some() {
        quote!(#private::ValueMode)
    } else {
        quote!(#private::OptionMode)
    };
    let probe = respan(quote!(#private::keep_probe::<_,), at);
    let keeper = quote!((&&#probe #item_ty>(&__cachette_mode)).__cachette_keeper());
    let (hooks, hooks_arg) = hooks(opts, item_ty.clone(), &private);
    let policy = policy(opts, &private);
    let (policy_local, policy_ref) = match &opts.ttl_expr {
        Some(ttl) => {
            let at = Span::call_site().located_at(ttl.span());
            let with_ttl = respan(quote!(__CACHETTE_POLICY.with_ttl), at);
            (
                quote_spanned!(at=> let __cachette_policy: #private::Policy = #with_ttl(#ttl);),
                quote!(__cachette_policy),
            )
        }
        None => (quote!(), quote!(__CACHETTE_POLICY)),
    };
    let (element, element_ty, collection) = (&b.element, &b.element_ty, &b.collection);
    let elements = crate::batch::elements(b);
    let given = crate::batch::given(b.form);
    let check = respan(quote!(#private::batch_element), element_ty.span());
    let callee = respan(quote!(#private::cached_batch::<_, #ret_ty, _, _>), at);
    let body = quote! {
        const __CACHETTE_POLICY: #private::Policy = #policy;
        #preamble
        #cache
        let __cachette_mode = #mode;
        let __cachette_keep = #keeper;
        // Before the collection is read (an iterable is consumed).
        let __cachette_through_mut: ::core::option::Option<&'static str> = #through_mut;
        let __cachette_fixed_tags: [::std::string::String; #n_fixed] = [#(#fixed),*];
        let __cachette_items: ::std::vec::Vec<#private::BatchItem<#element_ty>> =
            ::core::iter::Iterator::collect(::core::iter::Iterator::map(#elements, |#element: #element_ty| {
                let #element = #check(#element);
                #private::BatchItem {
                    key: #key,
                    tags: ::std::vec![#(#tag_exprs),*],
                    element: #element,
                }
            }));
        #policy_local
        #hooks
        #callee(
            #private::Site {
                cache: __cachette_cache,
                policy: &#policy_ref,
                function: __cachette_fn,
                through_mut: __cachette_through_mut,
            },
            __cachette_mode,
            __cachette_keep,
            __cachette_items,
            #hooks_arg,
            move |__cachette_missing: ::std::vec::Vec<#element_ty>| async move {
                #[allow(unused_variables)]
                let #collection = #given;
                let __cachette_ret: #ret_ty = #block;
                __cachette_ret
            },
        )
        .await
    };
    // The calls of one gathering share every argument the entries are
    // named after, but the element.
    let mut holes: Vec<TokenStream> = Vec::new();
    for rendered in m.tags.iter().chain(match &m.key {
        Key::Written(t) => Some(t),
        Key::Default(_) => None,
    }) {
        match rendered {
            Rendered::Template(t) => holes.extend(
                t.holes
                    .iter()
                    .zip(&t.roots)
                    .filter(|(_, root)| *element != root.as_str())
                    .map(|(hole, _)| hole.clone()),
            ),
            // A declared tag (checked not to name the element), whole.
            named @ Rendered::Named(_) => {
                let tag = name_expr(named, &private, false);
                holes.push(quote!(&#tag));
            }
        }
    }
    let mut pieces = vec![String::new()];
    pieces.extend(holes.iter().skip(1).map(|_| "\u{1f}".to_string()));
    if !holes.is_empty() {
        pieces.push(String::new());
    }
    let rendered = holes
        .iter()
        .map(|h| quote!((&&#private::Hole(#h)).__cachette_hole() as &dyn ::core::fmt::Display));
    let group = quote!({
        #[allow(unused_imports)]
        use #private::{HoleKey as _, HoleTag as _, HoleValue as _};
        #private::render(&[#(#pieces),*], &[#(#rendered),*])
    });
    let linked_cache = cache_binding(opts.common.cache.as_ref(), &private);
    let linked_preamble = preamble_of(function, &private, Some(&func.sig.ident));
    let linked = crate::batch::linked(
        func,
        b,
        group,
        linked_preamble,
        linked_cache,
        policy.clone(),
        &private,
    );
    let named = entries_fn(function, &private);
    let companions = companions(func, &function.callee, &private, true);
    Expanded {
        item: wrapper(func, body),
        siblings: quote!(#named #companions #linked),
    }
}

/// A method outside `#[cached_impl]` may be in a trait's impl, where its
/// companions cannot go: the compiler then refuses each of them as "not a
/// member of trait", and this one, refused first, says the fix.
fn marker(m: &Cached<'_>) -> Option<TokenStream> {
    let func = m.function.func;
    (!m.function.in_impl && matches!(func.sig.inputs.first(), Some(FnArg::Receiver(_)))).then(
        || {
            let marker = Ident::new(
                &format!(
                    "{}__in_a_trait_impl_needs_cached_impl",
                    syn::ext::IdentExt::unraw(&func.sig.ident)
                ),
                Span::call_site(),
            );
            quote! {
                #[doc(hidden)]
                #[allow(non_snake_case, dead_code)]
                fn #marker() {}
            }
        },
    )
}

/// The per-value options of a `#[cached]` call (`tags_from`, `ttl_fn`,
/// `none_ttl`, `unless`): their closures, bound to locals, and the
/// `Hooks` that names them. Each helper is spanned on its option, so that
/// a function of the wrong signature is reported there.
fn hooks(
    opts: &CachedOptions,
    ret_ty: TokenStream,
    private: &TokenStream,
) -> (TokenStream, TokenStream) {
    let none = quote!(::core::option::Option::None);
    let bind = |local: &str, helper: &str, option: &Expr, extra: TokenStream| {
        let at = Span::call_site().located_at(option.span());
        let helper = Ident::new(helper, at);
        let helper = respan(quote!(#private::#helper), at);
        let local = Ident::new(local, Span::call_site());
        let tokens = quote_spanned! {at=>
            let #local = #helper::<_, #ret_ty #extra>(&__cachette_mode, #option);
        };
        (tokens, quote!(::core::option::Option::Some(&#local)))
    };
    let mut locals = TokenStream::new();
    let field =
        |locals: &mut TokenStream, binding: Option<(TokenStream, TokenStream)>| match binding {
            Some((tokens, arg)) => {
                locals.extend(tokens);
                arg
            }
            None => none.clone(),
        };
    let tags_from = field(
        &mut locals,
        opts.common
            .tags_from
            .as_ref()
            .map(|f| bind("__cachette_tags_from", "tags_from", f, quote!(, _, _))),
    );
    let ttl_of = match (opts.none_ttl, &opts.ttl_fn) {
        (Some((ms, span)), ttl_fn) => {
            let at = Span::call_site().located_at(span);
            let (helper, of) = match ttl_fn {
                Some(f) => (quote!(none_ttl_or), quote!(, #f)),
                None => (quote!(none_ttl), quote!()),
            };
            let helper = respan(quote!(#private::#helper), at);
            locals.extend(quote_spanned! {at=>
                let __cachette_ttl_of =
                    #helper::<_, #ret_ty>(&__cachette_mode, #private::ms(#ms) #of);
            });
            quote!(::core::option::Option::Some(&__cachette_ttl_of))
        }
        (None, Some(f)) => field(
            &mut locals,
            Some(bind("__cachette_ttl_of", "ttl_fn", f, quote!())),
        ),
        (None, None) => none.clone(),
    };
    let unless = field(
        &mut locals,
        opts.unless
            .as_ref()
            .map(|f| bind("__cachette_unless", "unless", f, quote!())),
    );
    let hooks = quote!(#private::Hooks {
        tags_from: #tags_from,
        ttl_of: #ttl_of,
        unless: #unless,
    });
    (locals, hooks)
}

/// The `Policy` constant of a `#[cached]` function.
fn policy(opts: &CachedOptions, private: &TokenStream) -> TokenStream {
    let variant = opts.strategy.variant();
    // A TTL from an expression is set per call.
    let ttl = opts.ttl.unwrap_or(0);
    let mut policy = quote! {
        #private::Policy::new(#private::Strategy::#variant, #private::ms(#ttl))
    };
    // For logs: the template, or the declared name's type.
    let template = match &opts.key {
        Some(Name::Template(t)) => Some(t.value()),
        Some(Name::Named(s)) => Some(s.path.to_token_stream().to_string().replace(' ', "")),
        None => None,
    };
    if let Some(template) = template {
        policy = quote!(#policy.template(#template));
    }
    if let Some(ms) = opts.stale_ttl {
        policy = quote!(#policy.stale_ttl(#private::ms(#ms)));
    }
    if let Some(ms) = opts.lock_ttl {
        policy = quote!(#policy.lock_ttl(#private::ms(#ms)));
    }
    if let Some(ms) = opts.lock_wait {
        policy = quote!(#policy.lock_wait(#private::ms(#ms)));
    }
    if let Some(codec) = &opts.codec {
        policy = quote!(#policy.codec(#private::Codec::#codec));
    }
    if let Some(version) = opts.version {
        policy = quote!(#policy.version(#version));
    }
    if let Some((ms, _)) = opts.stale_if_error {
        policy = quote!(#policy.stale_if_error(#private::ms(#ms)));
    }
    if let Some((ms, _)) = opts.soft_timeout {
        policy = quote!(#policy.soft_timeout(#private::ms(#ms)));
    }
    if let Some((ms, _)) = opts.hard_timeout {
        policy = quote!(#policy.hard_timeout(#private::ms(#ms)));
    }
    if let Some(beta) = opts.beta {
        let beta = proc_macro2::Literal::f64_suffixed(beta);
        policy = quote!(#policy.beta(#beta));
    }
    policy
}

/// The key when `key` is omitted: the function's full path and the
/// arguments the lowering kept, each checked to be `Display` where it is.
fn default_key(params: &[(Ident, Span)], private: &TokenStream) -> TokenStream {
    let values = params.iter().map(|(ident, span)| {
        let check = respan(
            quote!(#private::an_omitted_key_displays_every_argument),
            Span::call_site().located_at(*span),
        );
        quote_spanned!(*span=> #check(&#ident))
    });
    quote! {{
        fn __cachette_marker() {}
        #private::default_key(#private::fn_path(__cachette_marker), &[#(#values),*])
    }}
}
