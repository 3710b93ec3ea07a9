//! The function's parameters as the checks see them, the variables a key
//! or tag reads, and the check of `unkeyed` and `not_a_transaction`
//! against the parameters.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, ItemFn, Pat, Type};

use crate::ctxt::Ctxt;
use crate::model::Rendered;

/// One typed parameter of the function, as the checks see it.
pub(crate) struct Param {
    /// Its name; `None` for a pattern.
    pub ident: Option<syn::Ident>,
    /// `_`: the body cannot use it.
    pub wild: bool,
    pub span: Span,
    /// Its type is `&mut T` (a connection, or a transaction).
    pub mut_ref: bool,
    /// Its type may turn out to be a `&mut` (a type parameter given
    /// `&mut *tx`, an alias): checked when called.
    pub opaque: bool,
    /// The `&mut self` receiver.
    pub receiver: bool,
    /// Its type is spelled `Cache` (behind `&` or `Arc`): most likely the
    /// cache the function should use, forgotten in `cache = ...`.
    pub cache_like: bool,
}

/// Whether `ty` is spelled as a `Cache`, a `&Cache` or an `Arc<Cache>`.
fn is_cache(ty: &Type) -> bool {
    match peel(ty) {
        Type::Reference(r) => is_cache(&r.elem),
        Type::Path(p) => p.path.segments.last().is_some_and(|last| {
            last.ident == "Cache"
                || (last.ident == "Arc"
                    && matches!(&last.arguments, syn::PathArguments::AngleBracketed(a)
                        if a.args.iter().any(|g| matches!(g, syn::GenericArgument::Type(t) if is_cache(t)))))
        }),
        _ => false,
    }
}

/// `ty` without the parentheses and invisible groups around it (a type
/// given through `macro_rules!` arrives in a group).
fn peel(ty: &Type) -> &Type {
    match ty {
        Type::Paren(t) => peel(&t.elem),
        Type::Group(t) => peel(&t.elem),
        other => other,
    }
}

/// Whether `ty` is spelled as a type that cannot be a `&mut` (a number, a
/// `String`, a collection), or may be one: any other named type may be an
/// alias of a `&mut`, or a type parameter given one (of the function or of
/// its impl), so an argument of it is checked when called.
fn may_be_mut_ref(ty: &Type) -> bool {
    match peel(ty) {
        Type::ImplTrait(_) => true,
        Type::Path(p) => match p.path.segments.last() {
            Some(last) => !matches!(
                last.ident.to_string().as_str(),
                "bool"
                    | "char"
                    | "str"
                    | "String"
                    | "Vec"
                    | "VecDeque"
                    | "HashMap"
                    | "BTreeMap"
                    | "HashSet"
                    | "BTreeSet"
                    | "Option"
                    | "Result"
                    | "Arc"
                    | "Rc"
                    | "Box"
                    | "u8"
                    | "u16"
                    | "u32"
                    | "u64"
                    | "u128"
                    | "usize"
                    | "i8"
                    | "i16"
                    | "i32"
                    | "i64"
                    | "i128"
                    | "isize"
                    | "f32"
                    | "f64"
                    | "Duration"
                    | "Uuid"
            ),
            None => false,
        },
        _ => false,
    }
}

/// The function's parameters as placeholder roots (`self` for a receiver),
/// and its typed parameters (a `&mut self` receiver among them, as `self`).
pub(crate) fn parameters(func: &ItemFn) -> (Vec<String>, Vec<Param>) {
    let mut names = Vec::new();
    let mut typed = Vec::new();
    for input in &func.sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                names.push("self".to_string());
                if matches!(r.kind, syn::ReceiverKind::Reference(_, _, Some(_))) {
                    typed.push(Param {
                        ident: Some(syn::Ident::new("self", r.self_token.span)),
                        wild: false,
                        span: r.span(),
                        mut_ref: true,
                        opaque: false,
                        receiver: true,
                        cache_like: false,
                    });
                }
            }
            FnArg::Typed(pt) => {
                let mut_ref = matches!(peel(&pt.ty), Type::Reference(r) if r.mutability.is_some());
                let opaque = may_be_mut_ref(&pt.ty);
                let (ident, wild) = match &*pt.pat {
                    Pat::Ident(pi) => {
                        names.push(pi.ident.to_string());
                        (Some(pi.ident.clone()), false)
                    }
                    Pat::Wild(_) => (None, true),
                    _ => (None, false),
                };
                typed.push(Param {
                    ident,
                    wild,
                    span: pt.span(),
                    mut_ref,
                    opaque,
                    receiver: false,
                    cache_like: is_cache(&pt.ty),
                });
            }
        }
    }
    (names, typed)
}

/// The parameters a key or tag reads: a template's placeholder roots, or
/// the variables a declared name's field values read.
pub(crate) fn roots(rendered: &Rendered) -> Vec<String> {
    match rendered {
        Rendered::Template(t) => t.roots.clone(),
        Rendered::Named(s) => {
            let mut out = Vec::new();
            for field in &s.fields {
                free_vars(&field.expr, &mut out);
            }
            out
        }
    }
}

/// The variables `expr` reads (`filter` of `filter.page`, `id` of
/// `id.to_string()`), into `out`. A macro's tokens are not read: what
/// they use does not count, so a parameter read only there is reported.
pub(crate) fn free_vars(expr: &Expr, out: &mut Vec<String>) {
    match expr {
        Expr::Path(p) if p.qself.is_none() => {
            if let Some(i) = p.path.get_ident() {
                out.push(i.to_string());
            }
        }
        Expr::Field(f) => free_vars(&f.base, out),
        Expr::Reference(r) => free_vars(&r.expr, out),
        Expr::Paren(p) => free_vars(&p.expr, out),
        Expr::Group(g) => free_vars(&g.expr, out),
        Expr::Unary(u) => free_vars(&u.expr, out),
        Expr::Cast(c) => free_vars(&c.expr, out),
        Expr::Index(i) => {
            free_vars(&i.expr, out);
            free_vars(&i.index, out);
        }
        Expr::MethodCall(m) => {
            free_vars(&m.receiver, out);
            m.args.iter().for_each(|a| free_vars(a, out));
        }
        Expr::Call(c) => c.args.iter().for_each(|a| free_vars(a, out)),
        Expr::Tuple(t) => t.elems.iter().for_each(|e| free_vars(e, out)),
        Expr::Array(a) => a.elems.iter().for_each(|e| free_vars(e, out)),
        Expr::Binary(b) => {
            free_vars(&b.left, out);
            free_vars(&b.right, out);
        }
        _ => {}
    }
}

/// The parameter whose value is the cache (`cache` of `cache = cache`,
/// `ctx` of `cache = ctx.cache`, `caches` of `cache = caches.get(t)`), if
/// any: only that one is exempt from being keyed. An argument that picks a
/// cache (`t`) is not, since two of its values may share one.
pub(crate) fn cache_root(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident().map(ToString::to_string),
        Expr::Field(f) => cache_root(&f.base),
        Expr::Reference(r) => cache_root(&r.expr),
        Expr::Paren(p) => cache_root(&p.expr),
        Expr::Group(g) => cache_root(&g.expr),
        Expr::MethodCall(m) => cache_root(&m.receiver),
        _ => None,
    }
}

/// Checks that `unkeyed` (of `#[cached]`; empty for `#[invalidates]`)
/// lists parameters the key and the tags do not read (`used`), and
/// `not_a_transaction` parameters that are, or may be, a `&mut`.
pub(crate) fn check_lists(
    func: &ItemFn,
    unkeyed: &[syn::Ident],
    not_a_transaction: &[syn::Ident],
    typed: &[Param],
    used: &[String],
    errors: &mut Ctxt,
) {
    let name = func.sig.ident.to_string();
    let param_names: Vec<String> = typed
        .iter()
        .filter_map(|p| p.ident.as_ref().map(ToString::to_string))
        .collect();
    for (option, list) in [
        ("unkeyed", unkeyed),
        ("not_a_transaction", not_a_transaction),
    ] {
        for ident in list {
            let n = ident.to_string();
            if !param_names.contains(&n) {
                errors.at(
                    ident.span(),
                    format!("`{option}` lists the parameters of `{name}`, and `{n}` is not one"),
                );
            } else if option == "unkeyed" && used.contains(&n) {
                errors.at(
                    ident.span(),
                    format!(
                        "`{n}` is in the key or the tags, so it shapes the result: it cannot be \
                         `unkeyed`"
                    ),
                );
            } else if option == "not_a_transaction"
                && !typed
                    .iter()
                    .any(|p| (p.mut_ref || p.opaque) && p.ident.as_ref().is_some_and(|i| *i == n))
            {
                errors.at(
                    ident.span(),
                    format!(
                        "`not_a_transaction` lists `&mut` parameters (connections), or ones of a \
                         type that may be a `&mut` (a type parameter, an alias), and `{n}` is \
                         neither"
                    ),
                );
            }
        }
    }
}
