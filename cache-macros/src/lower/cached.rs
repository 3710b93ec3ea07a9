//! `#[cached]` lowered: its options and function checked together into a
//! `model::Cached`. Every parameter shapes the entry, `&mut` arguments are
//! declared, the return type has something to cache and suits the
//! options, the background refresh can carry the arguments, and an omitted
//! key can name every parameter.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Pat, ReturnType, Type};

use super::params::{cache_root, check_lists, roots, Param};
use super::returns::{check_return_type, check_shape};
use super::{function, render, render_all, Context, Lowered};
use crate::ctxt::Ctxt;
use crate::model::{Cached, Carried, Key};
use crate::options::cached::CachedOptions;
use crate::values::Name;

/// The model of a `#[cached]` function; `None` when an error was recorded
/// (then `errors` holds it).
pub(crate) fn from_ast<'a>(
    errors: &mut Ctxt,
    args: TokenStream,
    func: &'a ItemFn,
    attr_text: &'a str,
    context: &Context<'a>,
) -> Option<Cached<'a>> {
    let mut opts = CachedOptions::parse(args, context.site(func), errors)?;
    let Lowered {
        function,
        names,
        mut typed,
    } = function(
        errors,
        "#[cached]",
        func,
        attr_text,
        &mut opts.common,
        context,
    );
    // A batch function's templates name its element, not the collection.
    let names = crate::batch::names(&names, &opts);
    if let Some((_, collection, _)) = &opts.batch {
        typed.retain(|p| p.ident.as_ref() != Some(collection));
    }
    let key = if crate::batch::key_refused(errors, func, &opts) {
        Some(None)
    } else {
        opts.key.as_ref().map(|k| render(errors, k, &names))
    };
    let tags = render_all(errors, &opts.common.tags, &names);
    let used: Vec<String> = key.iter().flatten().chain(&tags).flat_map(roots).collect();
    // A template refused above says nothing of the parameters it uses.
    if key.as_ref().is_none_or(Option::is_some) && tags.len() == opts.common.tags.len() {
        check_lists(
            func,
            &opts.unkeyed,
            &opts.common.not_a_transaction,
            &typed,
            &used,
            errors,
        );
        check_keyed(func, &opts, &typed, &used, errors);
    }
    let ret = match &func.sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some(&**ty),
    };
    check_return_type(ret, func, errors);
    let batch = crate::batch::lower(errors, func, &opts, ret);
    if let (Some(ty), None) = (ret, &opts.batch) {
        check_shape(ty, &opts, errors);
    }
    // `soft_timeout` runs the body in the background, as a refresh does.
    let refresh = if (opts.strategy.refreshes() || opts.soft_timeout.is_some()) && errors.is_empty()
    {
        carried(func, errors)
    } else {
        None
    };
    let key = match key {
        Some(written) => Key::Written(written?),
        None => Key::Default(default_key(&opts, &typed, errors)),
    };
    if !errors.is_empty() {
        return None;
    }
    Some(Cached {
        function,
        opts,
        key,
        tags,
        ret: ret?,
        refresh,
        batch,
    })
}

/// Checks that every parameter of a `#[cached]` function shapes its entry
/// (appears in the key or the tags, `used`), or is declared not to: a
/// parameter left out would let calls that differ in it share one entry,
/// and serve one caller another's result. `self` and the parameter that
/// gives the cache are exempt. Also checks that a `&mut` parameter (a
/// connection, maybe a transaction) is declared not to be a transaction,
/// since a value read through a transaction that rolls back must never be
/// stored.
fn check_keyed(
    func: &ItemFn,
    opts: &CachedOptions,
    typed: &[Param],
    used: &[String],
    errors: &mut Ctxt,
) {
    let name = func.sig.ident.to_string();
    let listed = |list: &[syn::Ident], n: &str| list.iter().any(|i| i == n);
    let not_a_transaction = &opts.common.not_a_transaction;
    let cache_roots: Vec<String> = opts
        .common
        .cache
        .as_ref()
        .and_then(cache_root)
        .into_iter()
        .collect();
    let key_hint = match &opts.key {
        Some(Name::Template(t)) => Some(t.value()),
        _ => None,
    };
    for p in typed {
        if p.wild {
            continue;
        }
        let Some(ident) = &p.ident else {
            if opts.key.is_some() {
                errors.at(
                    p.span,
                    "a destructured parameter cannot be placed in a key: bind it to a name \
                     (`point: Point`) and use `<point.x>` in the key",
                );
            }
            continue;
        };
        let n = ident.to_string();
        // `swr`, `early` and `soft_timeout` refuse `&mut` for a reason of their own.
        if p.mut_ref && (opts.strategy.refreshes() || opts.soft_timeout.is_some()) {
            continue;
        }
        if p.mut_ref && !listed(not_a_transaction, &n) {
            errors.at(
                p.span,
                format!(
                    "`{n}` is a `&mut` argument, perhaps a transaction: if `{name}` read through a \
                     transaction that then rolled back, it would store a row that was never \
                     committed. If `{n}` is a connection outside any transaction whenever `{name}` \
                     is called outside `cachette::deferred` (inside a scope, cached calls store \
                     nothing), say so: `not_a_transaction = [{n}]`. Otherwise read through the \
                     pool, or call `{name}_uncached` inside transactions"
                ),
            );
            continue;
        }
        // Even when listed in `unkeyed`: that would not make it the cache.
        if p.cache_like && !p.receiver && !cache_roots.contains(&n) {
            errors.at(
                p.span,
                format!(
                    "`{n}` is a cache, and `{name}` does not say which cache it uses: without \
                     `cache = {n}` it would read and fill the process's default cache, not `{n}`, \
                     while busts through `{n}` would miss it. Write `cache = {n}` in the attribute"
                ),
            );
            continue;
        }
        if p.receiver
            || opts.key.is_none()
            || used.contains(&n)
            || cache_roots.contains(&n)
            || listed(&opts.unkeyed, &n)
            || listed(not_a_transaction, &n)
        {
            continue;
        }
        let fix = match &key_hint {
            Some(key) => format!("`key = \"{key}:<{n}>\"`"),
            None => format!("a field of the key that `{n}` fills"),
        };
        errors.at(
            p.span,
            format!(
                "`{n}` is in neither the key nor the tags of `{name}`, so calls that differ only in \
                 `{n}` would share one entry, and one would be served the other's result. Put it \
                 in the key ({fix}), or, if it does not change the result (a pool, a client), \
                 list it: `unkeyed = [{n}]`"
            ),
        );
    }
}

/// For `swr` and `early`: how the background refresh carries each
/// argument into a call made after the function returned; `None`, with
/// the error recorded, for an argument it cannot carry.
fn carried<'a>(func: &'a ItemFn, errors: &mut Ctxt) -> Option<Vec<Carried<'a>>> {
    let mut out = Vec::new();
    for input in &func.sig.inputs {
        match input {
            FnArg::Receiver(r) => out.push(match &r.kind {
                syn::ReceiverKind::Reference(_, _, Some(_)) => {
                    errors.at(
                        r.self_token.span,
                        "swr, early and soft_timeout run the body in the background and cannot borrow `&mut self`",
                    );
                    return None;
                }
                syn::ReceiverKind::Reference(..) => Carried::SelfRef(r.self_token.span),
                syn::ReceiverKind::Typed(_, ty) => Carried::SelfOwned(Some(&**ty)),
                _ => Carried::SelfOwned(None),
            }),
            FnArg::Typed(pt) => {
                let Pat::Ident(pi) = &*pt.pat else {
                    errors.at(
                        pt.pat.span(),
                        "swr, early and soft_timeout need plain parameter names, to call the function again in the background",
                    );
                    return None;
                };
                out.push(match &*pt.ty {
                    Type::Reference(r) if r.mutability.is_some() => {
                        errors.at(
                            r.and_token.span,
                            "swr, early and soft_timeout run the body in the background and cannot take `&mut` parameters",
                        );
                        return None;
                    }
                    Type::Reference(r) => Carried::Borrowed(&pi.ident, &r.elem),
                    ty => Carried::Owned(&pi.ident, ty),
                });
            }
        }
    }
    Some(out)
}

/// The parameters of the key when `key` is omitted: every one but `self`,
/// the one given as `cache` and those declared not to shape the result;
/// each must be a plain name.
fn default_key(
    opts: &CachedOptions,
    typed: &[Param],
    errors: &mut Ctxt,
) -> Vec<(syn::Ident, Span)> {
    let cache_param = match &opts.common.cache {
        Some(syn::Expr::Path(p)) => p.path.get_ident().cloned(),
        _ => None,
    };
    let left_out = |ident: &syn::Ident| {
        cache_param.as_ref() == Some(ident)
            || opts.unkeyed.contains(ident)
            || opts.common.not_a_transaction.contains(ident)
    };
    let mut out = Vec::new();
    for p in typed
        .iter()
        .filter(|p| !p.wild && !p.receiver && !p.ident.as_ref().is_some_and(left_out))
    {
        match &p.ident {
            Some(ident) => out.push((ident.clone(), p.span)),
            None => errors.at(
                p.span,
                "a default key needs every parameter to be a plain name; set `key = \"...\"`",
            ),
        }
    }
    out
}
