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
//!         (&&P::Select::<Result<User, DbError>>::new()).__cachette_mode(), // caches Ok only
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
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, ItemFn, LitStr, Pat, ReturnType, Type};

use crate::attr::{self, Errors, Once};
use crate::template::{self, Template};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Cached,
    Invalidates,
}

impl Kind {
    fn attr_name(self) -> &'static str {
        match self {
            Kind::Cached => "#[cached]",
            Kind::Invalidates => "#[invalidates]",
        }
    }

    fn options(self) -> &'static [&'static str] {
        match self {
            Kind::Cached => &[
                "key",
                "ttl",
                "tags",
                "strategy",
                "stale_ttl",
                "lock_ttl",
                "lock_wait",
                "beta",
                "cache",
                "cache_none",
                "crate",
            ],
            Kind::Invalidates => &["keys", "tags", "cache", "crate"],
        }
    }
}

/// The strategies, as written and as the runtime names them.
const STRATEGIES: &[(&str, &str)] = &[
    ("aside", "Aside"),
    ("lock", "Lock"),
    ("swr", "Swr"),
    ("early", "Early"),
];

pub(crate) fn run(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let msg = format!("{} applies to an `async fn`", kind.attr_name());
            let err = syn::Error::new(Span::call_site(), msg).to_compile_error();
            return quote!(#err #item);
        }
    };
    let attr_text = args.to_string();
    let expanded = attr::parse_args
        .parse2(args)
        .and_then(|args| expand(kind, args, &func, &attr_text));
    match expanded {
        Ok(tokens) => tokens,
        // Emit the function unchanged beside the errors so the rest of the
        // crate, and the IDE, keep working.
        Err(e) => {
            let err = e.to_compile_error();
            quote!(#err #func)
        }
    }
}

/// Options of both attributes, validated.
#[derive(Default)]
struct Options {
    key: Once<LitStr>,
    keys: Once<Vec<LitStr>>,
    ttl: Once<u64>,
    stale_ttl: Once<u64>,
    lock_ttl: Once<u64>,
    lock_wait: Once<u64>,
    beta: Once<f64>,
    tags: Once<Vec<LitStr>>,
    strategy: Once<LitStr>,
    cache: Once<Expr>,
    cache_none: Once<bool>,
    krate: Once<syn::Path>,
    /// `ttl` was written, even if its value was refused.
    ttl_given: bool,
    /// `strategy` was written, even if its value was refused.
    strategy_given: bool,
}

fn parse_options(kind: Kind, args: Vec<attr::Arg>, errors: &mut Errors) -> Options {
    let mut o = Options::default();
    for attr::Arg { name, value } in args {
        let n = name.to_string();
        if !kind.options().contains(&n.as_str()) {
            let expected = kind
                .options()
                .iter()
                .map(|o| format!("`{o}`"))
                .collect::<Vec<_>>()
                .join(", ");
            errors.at(
                name.span(),
                format!(
                    "unknown option `{n}` for {}: expected one of {expected}",
                    kind.attr_name()
                ),
            );
            continue;
        }
        match n.as_str() {
            "key" => {
                if let Some(v) = attr::string(errors, &name, &value) {
                    o.key.set(errors, &name, v);
                }
            }
            "keys" => {
                if let Some(v) = attr::string_list(errors, &name, &value) {
                    o.keys.set(errors, &name, v);
                }
            }
            "tags" => {
                if let Some(v) = attr::string_list(errors, &name, &value) {
                    o.tags.set(errors, &name, v);
                }
            }
            "ttl" => {
                o.ttl_given = true;
                if let Some(v) = attr::duration_ms(errors, &name, &value, true) {
                    o.ttl.set(errors, &name, v);
                }
            }
            "stale_ttl" | "lock_ttl" | "lock_wait" => {
                if let Some(v) = attr::duration_ms(errors, &name, &value, false) {
                    let slot = match n.as_str() {
                        "stale_ttl" => &mut o.stale_ttl,
                        "lock_ttl" => &mut o.lock_ttl,
                        _ => &mut o.lock_wait,
                    };
                    slot.set(errors, &name, v);
                }
            }
            "beta" => {
                if let Some(v) = attr::positive_number(errors, &name, &value) {
                    o.beta.set(errors, &name, v);
                }
            }
            "strategy" => {
                if let Some(v) = attr::string(errors, &name, &value) {
                    let s = v.value();
                    o.strategy_given = true;
                    if STRATEGIES.iter().any(|(name, _)| *name == s) {
                        o.strategy.set(errors, &name, v);
                    } else {
                        errors.at(
                            v.span(),
                            format!(
                                r#"unknown strategy {s:?}: expected one of "aside", "lock", "swr", "early""#
                            ),
                        );
                    }
                }
            }
            "cache" => {
                if let Some(v) = attr::expr(errors, &name, value) {
                    o.cache.set(errors, &name, v);
                }
            }
            "cache_none" => {
                if let Some(v) = attr::boolean(errors, &name, &value) {
                    o.cache_none.set(errors, &name, v);
                }
            }
            "crate" => {
                if let Some(v) = attr::string(errors, &name, &value) {
                    match v.parse::<syn::Path>() {
                        Ok(path) => o.krate.set(errors, &name, path),
                        Err(_) => {
                            errors.at(v.span(), "`crate` must be a path, such as \"::cachette\"")
                        }
                    }
                }
            }
            _ => unreachable!("listed in Kind::options"),
        }
    }
    o
}

/// The function's parameters as placeholder roots (`self` for a receiver),
/// and the ones usable in a default key (`None` for a pattern parameter).
fn parameters(func: &ItemFn) -> (Vec<String>, Vec<(Option<syn::Ident>, Span)>) {
    let mut names = Vec::new();
    let mut typed = Vec::new();
    for input in &func.sig.inputs {
        match input {
            FnArg::Receiver(_) => names.push("self".to_string()),
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(pi) => {
                    names.push(pi.ident.to_string());
                    typed.push((Some(pi.ident.clone()), pt.span()));
                }
                other => typed.push((None, other.span())),
            },
        }
    }
    (names, typed)
}

fn expand(
    kind: Kind,
    args: Vec<attr::Arg>,
    func: &ItemFn,
    attr_text: &str,
) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let opts = parse_options(kind, args, &mut errors);
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
    let render = |lit: &LitStr, errors: &mut Errors| match template::parse(lit, &params) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let key = opts.key.get().and_then(|k| render(k, &mut errors));
    let tags: Vec<Template> = opts
        .tags
        .get()
        .into_iter()
        .flatten()
        .filter_map(|t| render(t, &mut errors))
        .collect();
    let keys: Vec<Template> = opts
        .keys
        .get()
        .into_iter()
        .flatten()
        .filter_map(|t| render(t, &mut errors))
        .collect();

    let ret = match &func.sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some(&**ty),
    };
    let krate = opts
        .krate
        .get()
        .map(ToTokens::to_token_stream)
        .unwrap_or_else(|| quote!(::cachette));
    let private = quote!(#krate::__private);

    if kind == Kind::Cached {
        if !opts.ttl_given {
            errors.at(
                Span::call_site(),
                "#[cached] needs a `ttl`, such as `ttl = 300` or `ttl = \"5m\"`",
            );
        }
        check_strategy_options(&opts, &mut errors);
        check_return_type(ret, func, &mut errors);
    }
    let strategy = opts
        .strategy
        .get()
        .map_or("aside".to_string(), LitStr::value);
    let refreshing = matches!(strategy.as_str(), "swr" | "early");
    let refresh = if kind == Kind::Cached && refreshing && errors_is_empty(&errors) {
        refresh(func, &mut errors)
    } else {
        None
    };
    let default_key = if kind == Kind::Cached && opts.key.get().is_none() {
        // The parameter that carries the cache is not part of the key.
        let cache_param = match opts.cache.get() {
            Some(Expr::Path(p)) => p.path.get_ident().cloned(),
            _ => None,
        };
        let typed: Vec<_> = typed
            .into_iter()
            .filter(|(ident, _)| ident.is_none() || *ident != cache_param)
            .collect();
        default_key(&typed, &private, &mut errors)
    } else {
        None
    };
    if let Some(e) = errors.finish() {
        return Err(e);
    }

    let cache = match opts.cache.get() {
        Some(expr) => quote_spanned!(expr.span()=> &(#expr)),
        None => quote!(&#private::default_cache(&__cachette_fn)),
    };
    let ret_ty = match ret {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    };
    let block = &func.block;
    let tag_exprs = tags.iter().map(|t| render_call(t, &private));
    // The selector traits pick the mode by what the return type is, through
    // any alias; the closure names this function and its generic arguments,
    // and the hash of its code (attribute included) tells apart functions
    // that share a path.
    let code = code_hash(attr_text, func);
    let preamble = quote! {
        #[allow(unused_imports)]
        use #private::{BustWhen as _, SelectOption as _, SelectPlain as _, SelectResult as _};
        let __cachette_fn = #private::function(&|| (), #code);
        let __cachette_cache: &#private::Cache = #cache;
    };
    let body = match kind {
        Kind::Cached => {
            let key = match key {
                Some(t) => render_call(&t, &private),
                None => default_key.expect("checked above"),
            };
            let (mode, check) = match (opts.cache_none.get(), opts.cache_none.span()) {
                (Some(true), Some(span)) => (
                    quote!(__cachette_mode_none),
                    quote_spanned!(span=> #private::cache_none_applies::<#ret_ty>();),
                ),
                _ => (quote!(__cachette_mode), quote!()),
            };
            let policy = policy(&opts, &strategy, &private);
            let (call, refresh_arg) = match &refresh {
                Some(Refresh {
                    closure: refresh, ..
                }) => (quote!(cached_refreshing), quote!(, #refresh)),
                None => (quote!(cached), quote!()),
            };
            quote! {
                const __CACHETTE_POLICY: #private::Policy = #policy;
                #preamble
                #check
                let __cachette_key: ::std::string::String = #key;
                let __cachette_tags = [#(#tag_exprs),*];
                #private::#call(
                    #private::Site {
                        cache: __cachette_cache,
                        policy: &__CACHETTE_POLICY,
                        function: __cachette_fn,
                    },
                    (&&#private::Select::<#ret_ty>::new()).#mode(),
                    &__cachette_key,
                    &__cachette_tags,
                    async { let __cachette_ret: #ret_ty = #block; __cachette_ret }
                    #refresh_arg
                )
                .await
            }
        }
        Kind::Invalidates => {
            let key_exprs = keys.iter().map(|t| render_call(t, &private));
            quote! {
                #preamble
                let __cachette_keys = [#(#key_exprs),*];
                let __cachette_tags = [#(#tag_exprs),*];
                let __cachette_bust = #private::invalidation(
                    __cachette_cache,
                    &__cachette_fn,
                    &__cachette_keys,
                    &__cachette_tags,
                );
                let __cachette_ret: #ret_ty =
                    async { let __cachette_ret: #ret_ty = #block; __cachette_ret }.await;
                let __cachette_ok = (&&#private::Select::<#ret_ty>::new())
                    .__cachette_bust()
                    .succeeded(&__cachette_ret);
                __cachette_bust.finish(__cachette_ok).await;
                __cachette_ret
            }
        }
    };
    let attrs = &func.attrs;
    let vis = &func.vis;
    let sig = &func.sig;
    let sibling = refresh.map(|r| r.sibling);
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
        #sibling
    })
}

/// A hash of the function's code and attribute, in hex: stable for one
/// compiler, different for any change of signature, body or options.
fn code_hash(attr: &str, func: &ItemFn) -> String {
    // FNV-1a, 64 bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in attr
        .bytes()
        .chain([0])
        .chain(func.to_token_stream().to_string().bytes())
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn errors_is_empty(errors: &Errors) -> bool {
    errors.is_empty()
}

/// Options that only make sense with some strategies.
fn check_strategy_options(opts: &Options, errors: &mut Errors) {
    let strategy = opts
        .strategy
        .get()
        .map_or("aside".to_string(), LitStr::value);
    if opts.strategy_given && opts.strategy.get().is_none() {
        return; // an unknown strategy was already reported
    }
    let rules: [(&str, Option<Span>, &[&str]); 4] = [
        ("stale_ttl", opts.stale_ttl.span(), &["swr"]),
        ("lock_wait", opts.lock_wait.span(), &["lock"]),
        ("lock_ttl", opts.lock_ttl.span(), &["lock", "swr", "early"]),
        ("beta", opts.beta.span(), &["early"]),
    ];
    for (name, span, allowed) in rules {
        if let Some(span) = span {
            if !allowed.contains(&strategy.as_str()) {
                let list = allowed
                    .iter()
                    .map(|s| format!("strategy = \"{s}\""))
                    .collect::<Vec<_>>()
                    .join(" or ");
                errors.at(
                    span,
                    format!(
                        "`{name}` applies only with {list} (this function uses \"{strategy}\")"
                    ),
                );
            }
        }
    }
}

/// The `Policy` constant of a `#[cached]` function.
fn policy(opts: &Options, strategy: &str, private: &TokenStream) -> TokenStream {
    let variant = STRATEGIES
        .iter()
        .find(|(name, _)| *name == strategy)
        .map_or("Aside", |(_, v)| *v);
    let variant = syn::Ident::new(variant, Span::call_site());
    let ttl = opts.ttl.get().copied().expect("checked before");
    let mut policy = quote! {
        #private::Policy::new(#private::Strategy::#variant, #private::ms(#ttl))
    };
    if let Some(template) = opts.key.get() {
        let template = template.value();
        policy = quote!(#policy.template(#template));
    }
    if let Some(ms) = opts.stale_ttl.get() {
        policy = quote!(#policy.stale_ttl(#private::ms(#ms)));
    }
    if let Some(ms) = opts.lock_ttl.get() {
        policy = quote!(#policy.lock_ttl(#private::ms(#ms)));
    }
    if let Some(ms) = opts.lock_wait.get() {
        policy = quote!(#policy.lock_wait(#private::ms(#ms)));
    }
    if let Some(beta) = opts.beta.get() {
        let beta = proc_macro2::Literal::f64_suffixed(*beta);
        policy = quote!(#policy.beta(#beta));
    }
    policy
}

/// For swr and early: a closure that, called only when a background
/// refresh is due, clones the arguments and calls a hidden sibling function
/// that returns a boxed, owned future calling the function again.
///
/// The sibling exists so that the future's `Send` bound is checked outside
/// the function's own body, where its future type is still opaque.
struct Refresh {
    closure: TokenStream,
    sibling: TokenStream,
}

fn refresh(func: &ItemFn, errors: &mut Errors) -> Option<Refresh> {
    let ident = &func.sig.ident;
    let sibling_ident = syn::Ident::new(&format!("__cachette_refresh_{ident}"), ident.span());
    let mut owned_args = Vec::new(); // what the closure passes
    let mut params = Vec::new(); // the sibling's parameters
    let mut call_args = Vec::new(); // what the sibling passes to the function
    let mut is_method = false;
    for input in &func.sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                is_method = true;
                let (clone, ty) = match &r.kind {
                    syn::ReceiverKind::Reference(_, _, Some(_)) => {
                        errors.at(
                            r.self_token.span,
                            "swr and early refresh in the background and cannot borrow `&mut self`",
                        );
                        return None;
                    }
                    syn::ReceiverKind::Reference(..) => {
                        (quote!(::core::clone::Clone::clone(self)), quote!(Self))
                    }
                    syn::ReceiverKind::Typed(_, ty) => {
                        (quote!(::core::clone::Clone::clone(&self)), quote!(#ty))
                    }
                    _ => (quote!(::core::clone::Clone::clone(&self)), quote!(Self)),
                };
                owned_args.push(clone);
                params.push(quote!(__cachette_self: #ty));
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
    let (call, target) = if is_method {
        (
            quote!(__cachette_self.#ident(#(#call_args),*)),
            quote!(Self::#sibling_ident),
        )
    } else {
        (quote!(#ident(#(#call_args),*)), quote!(#sibling_ident))
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

/// `render(&[pieces], &[&value as &dyn Display, ...])`, spanned on the
/// template so a missing `Display` is reported there.
fn render_call(t: &Template, private: &TokenStream) -> TokenStream {
    let pieces = &t.pieces;
    let holes = t
        .holes
        .iter()
        .map(|h| quote_spanned!(t.span=> #h as &dyn ::core::fmt::Display));
    quote_spanned!(t.span=> #private::render(&[#(#pieces),*], &[#(#holes),*]))
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
                values.push(quote_spanned!(*span=> &#ident as &dyn ::core::fmt::Display))
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

/// Checks that a `#[cached]` function has something to cache. Which of
/// its results are cached is decided by the type itself, through the
/// runtime's selector traits, not by how the type is spelled here.
fn check_return_type(ret: Option<&Type>, func: &ItemFn, errors: &mut Errors) {
    match ret {
        None => errors.at(
            func.sig.ident.span(),
            "#[cached] needs a return type: a function returning `()` has nothing to cache",
        ),
        Some(ty @ Type::ImplTrait(_)) => errors.at(
            ty.span(),
            "#[cached] cannot store an `impl Trait`: return a concrete type that implements \
             Serialize and DeserializeOwned",
        ),
        Some(_) => {}
    }
}

/// Snapshots of what the attributes generate, pretty-printed, checked in
/// under `tests/expand/`. `CACHETTE_BLESS=1 cargo test -p cache-macros`
/// rewrites them after a deliberate change; review the diff.
#[cfg(test)]
mod snapshots {
    use super::{run, Kind};
    use quote::quote;

    fn check(
        name: &str,
        kind: Kind,
        args: proc_macro2::TokenStream,
        item: proc_macro2::TokenStream,
        in_impl: bool,
    ) {
        let expanded = run(kind, args, item);
        let file = if in_impl {
            quote!(impl Repo { #expanded })
        } else {
            expanded
        };
        let file: syn::File = syn::parse2(file).expect("the expansion parses");
        let pretty = prettyplease::unparse(&file);
        let path = format!("{}/tests/expand/{name}.rs", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("CACHETTE_BLESS").is_some() {
            std::fs::write(&path, &pretty).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{path} is missing: run with CACHETTE_BLESS=1"));
        assert_eq!(
            pretty, expected,
            "the expansion of {name} changed; rerun with CACHETTE_BLESS=1 and review"
        );
    }

    #[test]
    fn cached_with_key_and_tags() {
        check(
            "cached_get_user",
            Kind::Cached,
            quote!(key = "user:<id>", ttl = 300, tags = ["org:<org>"]),
            quote! {
                async fn get_user(id: u64, org: &str) -> Result<User, DbError> {
                    db::load_user(id).await
                }
            },
            false,
        );
    }

    #[test]
    fn invalidates_keys_and_tags() {
        check(
            "invalidates_update_user",
            Kind::Invalidates,
            quote!(keys = ["user:<id>"], tags = ["org:<org>"]),
            quote! {
                async fn update_user(id: u64, org: &str, patch: Patch) -> Result<User, DbError> {
                    db::update_user(id, patch).await
                }
            },
            false,
        );
    }

    #[test]
    fn swr_method_with_its_refresh_sibling() {
        check(
            "cached_swr_method",
            Kind::Cached,
            quote!(
                cache = self.cache,
                key = "catalog:<shop>",
                ttl = "5m",
                strategy = "swr",
                stale_ttl = "1h"
            ),
            quote! {
                pub async fn catalog(&self, shop: &str) -> Result<Vec<Product>, DbError> {
                    self.db.products(shop).await
                }
            },
            true,
        );
    }

    #[test]
    fn default_key() {
        check(
            "cached_default_key",
            Kind::Cached,
            quote!(ttl = 60),
            quote! {
                async fn price(sku: &str, currency: Currency) -> Option<u64> {
                    lookup(sku, currency).await
                }
            },
            false,
        );
    }
}
