//! What `expand.rs` needs to know of a function before it generates: its
//! parameters as the checks see them, the keys and tags it names, and the
//! checks themselves (every parameter shapes the entry, `&mut` arguments
//! are declared, the return type has something to cache and suits the
//! options). Each error is recorded with its span; nothing here generates
//! the wrapper.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, FnArg, ItemFn, Pat, Type};

use crate::attr::{Kind, Options};
use crate::spans::{render_call, respan};
use crate::template::Template;
use crate::values::{self, Errors};

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
}

/// `ty` without the parentheses and invisible groups around it (a type
/// given through `macro_rules!` arrives in a group).
pub(crate) fn peel(ty: &Type) -> &Type {
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
pub(crate) fn may_be_mut_ref(ty: &Type) -> bool {
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
                });
            }
        }
    }
    (names, typed)
}

/// A key or tag, checked: a template, or a declared name's value.
pub(crate) enum Rendered {
    Template(Template),
    Named(syn::ExprStruct),
}

impl Rendered {
    /// The parameters it reads: a template's placeholder roots, or the
    /// variables a declared name's field values read.
    pub(crate) fn roots(&self) -> Vec<String> {
        match self {
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

    /// The expression of the rendered name; `key` for a key, else a tag.
    pub(crate) fn call(&self, private: &TokenStream, key: bool) -> TokenStream {
        match self {
            Rendered::Template(t) => render_call(t, private),
            Rendered::Named(s) => {
                let at = Span::call_site().located_at(s.span());
                let f = if key {
                    respan(quote!(#private::key_name), at)
                } else {
                    respan(quote!(#private::tag_name), at)
                };
                quote_spanned!(at=> #f(&#s))
            }
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

/// Checks that every parameter of a `#[cached]` function shapes its entry
/// (appears in the key or the tags), or is declared not to: a parameter
/// left out would let calls that differ in it share one entry, and serve
/// one caller another's result. `self` and the parameters that give the
/// cache are exempt. Also checks that a `&mut` parameter (a connection,
/// maybe a transaction) is declared not to be a transaction, since a value
/// read through a transaction that rolls back must never be stored.
pub(crate) fn check_parameters(
    kind: Kind,
    func: &ItemFn,
    opts: &Options,
    typed: &[Param],
    used: &[String],
    errors: &mut Errors,
) {
    let name = func.sig.ident.to_string();
    let param_names: Vec<String> = typed
        .iter()
        .filter_map(|p| p.ident.as_ref().map(ToString::to_string))
        .collect();
    let listed = |list: &[syn::Ident], n: &str| list.iter().any(|i| i == n);
    for (option, list) in [
        ("unkeyed", &opts.unkeyed),
        ("not_a_transaction", &opts.not_a_transaction),
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
    if kind != Kind::Cached {
        return;
    }
    let cache_roots: Vec<String> = opts
        .cache
        .as_ref()
        .and_then(cache_root)
        .into_iter()
        .collect();
    let key_hint = match &opts.key {
        Some(values::Name::Template(t)) => Some(t.value()),
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
        // `swr` and `early` refuse `&mut` for a reason of their own.
        if p.mut_ref && opts.strategy.refreshes() {
            continue;
        }
        if p.mut_ref && !listed(&opts.not_a_transaction, &n) {
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
        if p.receiver
            || opts.key.is_none()
            || used.contains(&n)
            || cache_roots.contains(&n)
            || listed(&opts.unkeyed, &n)
            || listed(&opts.not_a_transaction, &n)
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

/// Checks that a `#[cached]` function has something to cache. Which of
/// its results are cached is decided by the type itself, through the
/// runtime's selector traits, not by how the type is spelled here.
pub(crate) fn check_return_type(ret: Option<&Type>, func: &ItemFn, errors: &mut Errors) {
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
        Some(ty) => {
            if let Some(reference) = borrowed(ty) {
                errors.at(
                    reference,
                    "#[cached] stores the value and reads it back later, so it must be owned: \
                     return `String` rather than `&str`, `Vec<T>` rather than `&[T]`, `T` \
                     rather than `&T`",
                );
            }
        }
    }
}

/// What a return type is, as far as its spelling tells.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Option,
    ResultOption,
    Result,
    /// Neither (a number, a `String`, a `Vec`, a tuple, a reference).
    Plain,
    /// A type the spelling does not tell (a struct, or an alias).
    Unknown,
}

pub(crate) fn shape(ty: &Type) -> Shape {
    match ty {
        Type::Paren(t) => shape(&t.elem),
        Type::Group(t) => shape(&t.elem),
        Type::Reference(_) | Type::Tuple(_) | Type::Array(_) | Type::Slice(_) => Shape::Plain,
        Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else {
                return Shape::Unknown;
            };
            match last.ident.to_string().as_str() {
                "Option" => Shape::Option,
                "Result" => {
                    let inner = match &last.arguments {
                        syn::PathArguments::AngleBracketed(args) => match args.args.first() {
                            Some(syn::GenericArgument::Type(t)) => Some(shape(t)),
                            _ => None,
                        },
                        _ => None,
                    };
                    match inner {
                        Some(Shape::Option) => Shape::ResultOption,
                        // An alias of `Option`, perhaps: the runtime's
                        // traits decide.
                        Some(Shape::Unknown) => Shape::Unknown,
                        _ => Shape::Result,
                    }
                }
                "bool" | "char" | "str" | "String" | "Vec" | "VecDeque" | "HashMap"
                | "BTreeMap" | "HashSet" | "BTreeSet" | "u8" | "u16" | "u32" | "u64" | "u128"
                | "usize" | "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "f32" | "f64" => {
                    Shape::Plain
                }
                _ => Shape::Unknown,
            }
        }
        _ => Shape::Unknown,
    }
}

/// Refuses, where the return type's spelling tells, the options that do
/// not apply to it; for other types (aliases, structs) the runtime's
/// traits check the type itself.
pub(crate) fn check_shape(ty: &Type, opts: &Options, errors: &mut Errors) {
    let shape = shape(ty);
    let shown = ty
        .to_token_stream()
        .to_string()
        .replace(" < ", "<")
        .replace(" >", ">")
        .replace(" ,", ",");
    let none = [
        ("none_ttl", opts.none_ttl.map(|(_, s)| s)),
        ("cache_none", opts.cache_none),
    ];
    for (name, span) in none {
        if let Some(span) = span {
            if matches!(shape, Shape::Result | Shape::Plain) {
                errors.at(
                    span,
                    format!(
                        "`{name}` applies only to functions returning `Option<T>` or \
                         `Result<Option<T>, E>`: `{shown}` has no `None` to cache"
                    ),
                );
            }
        }
    }
    if let Some((_, span)) = opts.stale_if_error {
        if matches!(shape, Shape::Option | Shape::Plain) {
            errors.at(
                span,
                format!(
                    "`stale_if_error` applies only to functions returning `Result`: `{shown}` \
                     has no error to serve a stale value for"
                ),
            );
        }
    }
}

/// Where `ty` borrows (a `&` anywhere inside it), if it does.
///
/// Only what is surely stored is looked at: the type itself, and the
/// first argument of `Option`, `Result` (its `Ok` type; errors are not
/// cached) and `Vec`. Other generic types may hold a reference they never
/// store (a `PhantomData`), and an alias of `Result` cannot be told apart
/// here; for those the compiler's own error remains.
pub(crate) fn borrowed(ty: &Type) -> Option<Span> {
    match ty {
        Type::Reference(r) => Some(r.and_token.span),
        Type::Paren(t) => borrowed(&t.elem),
        Type::Group(t) => borrowed(&t.elem),
        Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last()?;
            if !matches!(last.ident.to_string().as_str(), "Option" | "Result" | "Vec") {
                return None;
            }
            let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
                return None;
            };
            match args.args.first()? {
                syn::GenericArgument::Type(t) => borrowed(t),
                _ => None,
            }
        }
        _ => None,
    }
}
