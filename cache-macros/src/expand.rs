//! From a parsed attribute and function to the wrapper.
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
//! `#[invalidates]` renders its keys and tags the same way before the body,
//! arms `__private::invalidation` (which keeps the bust if the call is
//! dropped midway), awaits the body, then busts when it succeeded.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, FnArg, ItemFn, ReturnType};

use crate::attr::{self, Kind, Options};
use crate::calls::key_call;
use crate::companions::{companions, Callee};
use crate::lower::{check_parameters, check_return_type, check_shape, parameters, Rendered};
use crate::refresh::{refresh, Refresh};
use crate::spans::respan;
use crate::template;
use crate::values::{Errors, Name};

pub(crate) fn run(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            // A function whose body does not parse gets syn's own error;
            // anything that is not a function gets ours.
            let e = if syn::parse2::<FnShape>(item.clone()).is_ok() {
                e
            } else {
                syn::Error::new(
                    Span::call_site(),
                    format!("{} applies to an `async fn`", kind.attr_name()),
                )
            };
            let err = e.to_compile_error();
            return quote!(#err #item);
        }
    };
    let attr_text = args.to_string();
    match expand(kind, args, &func, &attr_text, &Context::default()) {
        Ok(Expanded { item, siblings }) => quote!(#item #siblings),
        // Emit the function unchanged beside the errors so the rest of the
        // crate, and the IDE, keep working.
        Err(e) => {
            let err = e.to_compile_error();
            quote!(#err #func)
        }
    }
}

/// A function whose body is left unparsed: attributes, visibility,
/// signature, then any `{ ... }`.
struct FnShape;

impl Parse for FnShape {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        input.call(syn::Attribute::parse_outer)?;
        input.parse::<syn::Visibility>()?;
        input.parse::<syn::Signature>()?;
        let body;
        syn::braced!(body in input);
        body.parse::<TokenStream>()?;
        Ok(FnShape)
    }
}

/// Where the function is, when an impl-level attribute says it.
#[derive(Default)]
pub(crate) struct Context<'a> {
    /// The function is an associated function of an impl block.
    pub in_impl: bool,
    /// ... of this trait's impl: what it generates beside the function
    /// goes to an inherent impl of the type, and calls it through the trait.
    pub trait_path: Option<&'a syn::Path>,
    /// The impl's cache, for functions that name none.
    pub cache: Option<&'a Expr>,
}

impl Context<'_> {
    fn callee(&self, func: &ItemFn) -> Callee<'_> {
        let method = matches!(func.sig.inputs.first(), Some(FnArg::Receiver(_)));
        match self.trait_path {
            Some(t) => Callee::Trait(t),
            None if self.in_impl || method => Callee::Associated,
            None => Callee::Free,
        }
    }
}

/// The function, and what goes beside it (companions, the refresh).
pub(crate) struct Expanded {
    pub item: TokenStream,
    pub siblings: TokenStream,
}

pub(crate) fn expand(
    kind: Kind,
    args: TokenStream,
    func: &ItemFn,
    attr_text: &str,
    context: &Context<'_>,
) -> syn::Result<Expanded> {
    let mut errors = Errors::default();
    let site = if context.in_impl {
        func.sig.ident.span()
    } else {
        Span::call_site()
    };
    let Some(mut opts) = attr::parse(kind, args, site, &mut errors) else {
        return Err(errors.finish().expect("a syntax error was recorded"));
    };
    if opts.cache.is_none() {
        opts.cache = context.cache.cloned();
    }
    let callee = context.callee(func);
    if func.sig.asyncness.is_none() {
        errors.at(
            func.sig.fn_token.span,
            format!(
                "{} needs an `async fn`: the cache is reached asynchronously",
                kind.attr_name()
            ),
        );
    }
    let (params, typed) = parameters(func);
    let render = |name: &Name, errors: &mut Errors| match name {
        Name::Template(lit) => match template::parse(lit, &params) {
            Ok(t) => Some(Rendered::Template(t)),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        Name::Named(s) => Some(Rendered::Named(s.clone())),
    };
    let key = opts.key.as_ref().and_then(|k| render(k, &mut errors));
    let tags: Vec<Rendered> = opts
        .tags
        .iter()
        .filter_map(|t| render(t, &mut errors))
        .collect();
    let keys: Vec<Rendered> = opts
        .keys
        .iter()
        .filter_map(|t| render(t, &mut errors))
        .collect();
    let used: Vec<String> = key.iter().chain(&tags).flat_map(Rendered::roots).collect();
    // A template refused above says nothing of the parameters it uses.
    let all_rendered = key.is_some() == opts.key.is_some() && tags.len() == opts.tags.len();
    if all_rendered {
        check_parameters(kind, func, &opts, &typed, &used, &mut errors);
    }

    let ret = match &func.sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some(&**ty),
    };
    let krate = opts
        .krate
        .as_ref()
        .map(ToTokens::to_token_stream)
        .unwrap_or_else(|| quote!(::cachette));
    let private = quote!(#krate::__private);

    if kind == Kind::Cached {
        check_return_type(ret, func, &mut errors);
        if let Some(ty) = ret {
            check_shape(ty, &opts, &mut errors);
        }
    }
    let refresh = if kind == Kind::Cached && opts.strategy.refreshes() && errors.is_empty() {
        refresh(func, &callee, &private, &mut errors)
    } else {
        None
    };
    let default_key = if kind == Kind::Cached && opts.key.is_none() {
        // The parameter that carries the cache is not part of the key, nor
        // are those declared not to shape the result.
        let cache_param = match &opts.cache {
            Some(Expr::Path(p)) => p.path.get_ident().cloned(),
            _ => None,
        };
        let left_out = |ident: &syn::Ident| {
            cache_param.as_ref() == Some(ident)
                || opts.unkeyed.contains(ident)
                || opts.not_a_transaction.contains(ident)
        };
        let typed: Vec<_> = typed
            .iter()
            .filter(|p| !p.wild && !p.receiver && !p.ident.as_ref().is_some_and(left_out))
            .map(|p| (p.ident.clone(), p.span))
            .collect();
        default_key(&typed, &private, &mut errors)
    } else {
        None
    };
    let call_keys: Vec<TokenStream> = opts
        .calls
        .iter()
        .filter_map(|c| key_call(c, &mut errors))
        .collect();
    // A `&mut` argument may be a transaction: a bust through it, outside
    // `deferred`, comes before the commit, and a read through it may store
    // what is rolled back. Declared `&mut` parameters are known here;
    // generic ones are checked when called (a `&mut *tx` given to an
    // `impl Executor`).
    let transaction = typed
        .iter()
        .filter(|p| p.mut_ref)
        .filter_map(|p| p.ident.as_ref())
        .find(|i| !opts.not_a_transaction.contains(i))
        .map(ToString::to_string);
    let opaque: Vec<&syn::Ident> = typed
        .iter()
        .filter(|p| p.opaque)
        .filter_map(|p| p.ident.as_ref())
        .filter(|i| !opts.not_a_transaction.contains(i))
        .collect();
    if let Some(e) = errors.finish() {
        return Err(e);
    }

    let cache = match &opts.cache {
        Some(expr) => quote_spanned!(expr.span()=> &(#expr)),
        None => quote!(&#private::default_cache(&__cachette_fn)),
    };
    let ret_ty = match ret {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    };
    let block = &func.block;
    let tag_exprs = tags.iter().map(|t| t.call(&private, false));
    // The selector traits pick the mode by what the return type is, through
    // any alias; the closure names this function and its generic arguments,
    // and the hash of its code (attribute included) tells apart functions
    // that share a path.
    let code = code_hash(attr_text, func);
    let preamble_without_cache = quote! {
        #[allow(unused_imports)]
        use #private::{
            BustWhen as _, KeepClone as _, KeepDecoding as _, SelectOption as _, SelectPlain as _,
            SelectResult as _, SelectResultOption as _,
        };
        let __cachette_fn = #private::function(&|| (), #code);
    };
    let preamble = quote! {
        #preamble_without_cache
        let __cachette_cache: &#private::Cache = #cache;
    };
    let through_mut = if opaque.is_empty() {
        quote!(::core::option::Option::None)
    } else {
        let names = opaque.iter().map(|i| i.to_string());
        let idents = opaque.iter();
        quote!(#private::mut_argument(&[#((#names, #private::is_mut_ref(&#idents))),*]))
    };
    let body = match kind {
        Kind::Cached => {
            let key = match &key {
                Some(t) => t.call(&private, true),
                None => default_key.expect("checked above"),
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
                (attr::Strategy::Swr, None) => {
                    Some(opts.strategy_span.unwrap_or_else(Span::call_site))
                }
                _ => None,
            };
            let serves_stale = stale_at.map(|span| {
                let at = Span::call_site().located_at(span);
                let applies = respan(quote!(#private::serves_stale_applies), at);
                quote_spanned!(at=> #applies(&__cachette_mode);)
            });
            let policy = policy(&opts, &private);
            // Located at the return type, so that a value type that cannot
            // be stored is reported there; resolved at the call site, like
            // every other token the attribute writes.
            let at = Span::call_site().located_at(ret.map_or_else(Span::call_site, Spanned::span));
            let (hooks, hooks_arg) = hooks(&opts, ret_ty.clone(), &private);
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
            let call_expr = quote_spanned!(at=> #call_expr.await);

            quote! {
                const __CACHETTE_POLICY: #private::Policy = #policy;
                #preamble
                #check
                let __cachette_key: ::std::string::String = #key;
                let __cachette_mode = #mode_expr;
                #serves_stale
                let __cachette_keep = #keeper;
                let __cachette_tags = [#(#tag_exprs),*];
                #policy_local
                #hooks
                #call_expr
            }
        }
        Kind::Invalidates => {
            let key_exprs = keys.iter().map(|t| t.call(&private, true));
            let calls = &call_keys;
            let transaction = match &transaction {
                Some(t) => quote!(::core::option::Option::Some(#t)),
                None => through_mut.clone(),
            };
            // Tags from the result, once it is known to have succeeded.
            let derive = opts.tags_from.as_ref().map(|f| {
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
            // Only `calls`: each names its own cache; the function needs none.
            let (preamble, own) = if keys.is_empty()
                && tags.is_empty()
                && opts.tags_from.is_none()
                && opts.keys_from.is_none()
            {
                (preamble_without_cache, quote!(::core::option::Option::None))
            } else {
                (
                    preamble,
                    quote!(::core::option::Option::Some(__cachette_cache)),
                )
            };
            quote! {
                #preamble
                let __cachette_keys = [#(#key_exprs),*];
                let __cachette_tags = [#(#tag_exprs),*];
                let __cachette_calls: [#private::EntryKey; #n_calls] = [#(#calls),*];
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
            }
        }
    };
    let attrs = &func.attrs;
    let vis = &func.vis;
    let sig = &func.sig;
    let sibling = refresh.map(|r| r.sibling);
    let companions = match kind {
        Kind::Cached => companions(func, &callee, &private),
        Kind::Invalidates => quote!(),
    };
    // A method outside `#[cached_impl]` may be in a trait's impl, where its
    // companions cannot go: the compiler then refuses each of them as "not
    // a member of trait", and this one, refused first, says the fix.
    let marker = (kind == Kind::Cached
        && !context.in_impl
        && matches!(func.sig.inputs.first(), Some(FnArg::Receiver(_))))
    .then(|| {
        let marker = syn::Ident::new(
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
    });
    Ok(Expanded {
        item: quote! {
            #(#attrs)*
            #vis #sig {
                #body
            }
        },
        siblings: quote!(#marker #sibling #companions),
    })
}

/// A hash of the function's code and attribute, in hex: stable for one
/// compiler, different for any change of signature, body or options.
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

/// The per-value options of a `#[cached]` call (`tags_from`, `ttl_fn`,
/// `none_ttl`, `unless`): their closures, bound to locals, and the
/// `Hooks` that names them. Each helper is spanned on its option, so that
/// a function of the wrong signature is reported there.
fn hooks(opts: &Options, ret_ty: TokenStream, private: &TokenStream) -> (TokenStream, TokenStream) {
    let none = quote!(::core::option::Option::None);
    let bind = |local: &str, helper: &str, option: &Expr, extra: TokenStream| {
        let at = Span::call_site().located_at(option.span());
        let helper = syn::Ident::new(helper, at);
        let helper = respan(quote!(#private::#helper), at);
        let local = syn::Ident::new(local, Span::call_site());
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
        opts.tags_from
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
fn policy(opts: &Options, private: &TokenStream) -> TokenStream {
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
    if let Some(beta) = opts.beta {
        let beta = proc_macro2::Literal::f64_suffixed(beta);
        policy = quote!(#policy.beta(#beta));
    }
    policy
}

/// The key when `key` is omitted: the function's full path and every
/// argument but `self` and the one given as `cache`.
fn default_key(
    typed: &[(Option<syn::Ident>, Span)],
    private: &TokenStream,
    errors: &mut Errors,
) -> Option<TokenStream> {
    let mut values = Vec::new();
    for (ident, span) in typed {
        match ident {
            Some(ident) => {
                let check = respan(
                    quote!(#private::an_omitted_key_displays_every_argument),
                    Span::call_site().located_at(*span),
                );
                values.push(quote_spanned!(*span=> #check(&#ident)))
            }
            None => errors.at(
                *span,
                "a default key needs every parameter to be a plain name; set `key = \"...\"`",
            ),
        }
    }
    Some(quote! {{
        fn __cachette_marker() {}
        #private::default_key(#private::fn_path(__cachette_marker), &[#(#values),*])
    }})
}

#[cfg(test)]
mod version_tests {
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
