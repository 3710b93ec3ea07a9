//! `#[cached(batch = "id in ids", ...)]`: a batch function, lowered and
//! generated.
//!
//! Input:
//! ```text
//! #[cached(batch = "id in ids", key = "user:<id>", ttl = 300, tags = ["org:<org>"], one = get_user)]
//! async fn get_users(org: &str, ids: &[u64]) -> Result<HashMap<u64, User>, DbError> { BODY }
//! ```
//! Output (paths shortened; `P` is `::cachette::__private`):
//! ```text
//! async fn get_users(org: &str, ids: &[u64]) -> Result<HashMap<u64, User>, DbError> {
//!     let __cachette_fn = __cachette_entries_of_get_users();
//!     let __cachette_items = ids.iter().cloned().map(|id| P::BatchItem {
//!         key: P::render(&["user:", ""], &[&id]), tags: vec![...], element: id,
//!     }).collect();
//!     P::cached_batch::<_, R, _, _>(site, P::OptionMode, keep, __cachette_items, hooks,
//!         move |__cachette_missing: Vec<u64>| async move {
//!             let ids = &__cachette_missing[..];
//!             let __cachette_ret: R = BODY; __cachette_ret
//!         }).await
//! }
//! // The companions: `get_users_uncached`, `get_users_refresh`, and
//! // `get_users_key` (one `EntryKey` per element), and with `one`:
//! async fn get_user(org: &str, id: u64) -> Result<Option<User>, DbError> {
//!     let __cachette_fn = __cachette_entries_of_get_users();
//!     P::load_one::<R, _, _, _>(cache, &__cachette_fn, GROUP, id,
//!         move |m| async move { get_users(org, &m[..]).await }).await
//! }
//! // and its companions, each a call of `get_user` under the companion,
//! // which calls `get_users` at once for its element.
//! ```

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, ToTokens};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, Type};

use crate::ctxt::Ctxt;
use crate::options::cached::CachedOptions;

/// How the collection parameter is declared, and so how the body is
/// given the elements that missed (always gathered in a `Vec`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// `&[K]`: `&missing[..]`.
    Slice,
    /// `&Vec<K>`: `&missing`.
    VecRef,
    /// `Vec<K>`: `missing`.
    Vec,
    /// `impl IntoIterator<Item = K>`: `missing`.
    Iter,
}

/// What the lowering checked of a batch function.
pub(crate) struct Batch {
    pub element: Ident,
    pub collection: Ident,
    pub form: Form,
    /// The element's type, as the collection's declaration spells it.
    pub element_ty: Type,
    /// With `one = f`: its name and return type (the batch function's, the
    /// collection of pairs replaced by `Option<V>`).
    pub one: Option<(Ident, Type)>,
}

/// The parameter names templates of a batch function may use: every
/// parameter but the collection, and the element.
pub(crate) fn names(names: &[String], opts: &CachedOptions) -> Vec<String> {
    match &opts.batch {
        Some((element, collection, _)) => names
            .iter()
            .filter(|n| collection != n.as_str())
            .cloned()
            .chain(std::iter::once(element.to_string()))
            .collect(),
        None => names.to_vec(),
    }
}

/// Checks a batch function's declaration: a free, non-generic `async fn`
/// whose collection parameter is a slice, a `Vec` or an iterable, whose
/// key is a template naming the element (and not the collection).
pub(crate) fn lower(
    errors: &mut Ctxt,
    func: &ItemFn,
    opts: &CachedOptions,
    ret: Option<&Type>,
) -> Option<Batch> {
    let (element, collection, span) = opts.batch.clone()?;
    let name = func.sig.ident.to_string();
    if let Some(FnArg::Receiver(r)) = func.sig.inputs.first() {
        errors.at(
            r.self_token.span,
            "a batch function is a free `async fn` (not a method): call it from the method",
        );
    }
    if !func.sig.generics.params.is_empty() {
        errors.at(
            func.sig.generics.span(),
            "a batch function cannot be generic: its elements' entries are named after one function",
        );
    }
    if collection == element {
        errors.at(
            span,
            "the element and the collection need two names: `batch = \"id in ids\"`",
        );
    }
    let mut found = None;
    for input in &func.sig.inputs {
        if let FnArg::Typed(pt) = input {
            match &*pt.pat {
                Pat::Ident(pi) if pi.ident == collection => found = Some(&*pt.ty),
                Pat::Ident(pi) if pi.ident == element => errors.at(
                    pi.ident.span(),
                    format!(
                        "`{element}` names the element of `{collection}` in `batch`: give this \
                         parameter another name"
                    ),
                ),
                _ => {}
            }
        }
    }
    let Some(ty) = found else {
        errors.at(
            span,
            format!("`{collection}` is not a parameter of `{name}`: `batch = \"{element} in <a parameter>\"`"),
        );
        return None;
    };
    let Some((form, element_ty)) = classify(ty) else {
        errors.at(
            ty.span(),
            format!(
                "the collection `{collection}` must be a slice (`&[u64]`), a `Vec<u64>`, a \
                 `&Vec<u64>` or an `impl IntoIterator<Item = u64>`, so that the body can be given \
                 the elements that missed"
            ),
        );
        return None;
    };
    for tag in &opts.common.tags {
        if let crate::values::Name::Named(s) = tag {
            let mut used = Vec::new();
            for field in &s.fields {
                crate::lower::params::free_vars(&field.expr, &mut used);
            }
            if used.iter().any(|u| element == u.as_str()) {
                errors.at(
                    s.span(),
                    format!(
                        "a tag of a batch function that names the element is a template, such as \
                         `tags = [\"user:<{element}>\"]` (a declared tag is rendered once per call)"
                    ),
                );
            }
        }
    }
    if let Some(ret) = ret {
        if not_pairs(ret) {
            errors.at(
                ret.span(),
                format!(
                    "a batch function returns `(element, value)` pairs: `HashMap<{k}, V>`, \
                     `BTreeMap<{k}, V>` or `Vec<({k}, V)>`, or a `Result` of one: every element \
                     it returns is stored under its own key",
                    k = element_ty.to_token_stream()
                ),
            );
        }
    }
    let one = match (&opts.one, ret) {
        (Some(one), Some(ret)) => match one_return(ret) {
            Some(ty) => Some((one.clone(), ty)),
            None => {
                errors.at(
                    ret.span(),
                    "a batch function with `one` spells out its return type: `HashMap<K, V>`, \
                     `BTreeMap<K, V>` or `Vec<(K, V)>`, or a `Result` of one (the single-key \
                     function returns `Option<V>` or a `Result` of it)",
                );
                None
            }
        },
        _ => None,
    };
    Some(Batch {
        element,
        collection,
        form,
        element_ty,
        one,
    })
}

/// Checks a batch function's key: a template that names the element,
/// not the collection. `true` when it was refused (then it is not
/// parsed against the parameters, whose errors would say less).
pub(crate) fn key_refused(errors: &mut Ctxt, func: &ItemFn, opts: &CachedOptions) -> bool {
    let Some((element, collection, span)) = &opts.batch else {
        return false;
    };
    let name = func.sig.ident.to_string();
    let before = errors.count();
    match &opts.key {
        Some(crate::values::Name::Template(t)) => {
            let text = t.value();
            if text.contains(&format!("<{collection}>")) || text.contains(&format!("<{collection}.")) {
                errors.at(
                    t.span(),
                    format!(
                        "the key of a batch function names one element, `<{element}>`, not the \
                         collection `<{collection}>`"
                    ),
                );
            } else if !text.contains(&format!("<{element}>"))
                && !text.contains(&format!("<{element}."))
            {
                errors.at(
                    t.span(),
                    format!(
                        "the key of a batch function names its element, so that every element has \
                         an entry of its own: `key = \"{}<{element}>\"`",
                        if text.is_empty() {
                            "item:".to_string()
                        } else {
                            format!("{text}:")
                        }
                    ),
                );
            }
        }
        Some(crate::values::Name::Named(s)) => errors.at(
            s.span(),
            "the key of a batch function is a template naming its element, such as \
             `key = \"user:<id>\"`",
        ),
        None => errors.at(
            *span,
            format!("a batch function needs a `key` naming its element, such as `key = \"{name}:<{element}>\"`"),
        ),
    }
    errors.count() > before
}

/// The form of a collection parameter and its element's type.
fn classify(ty: &Type) -> Option<(Form, Type)> {
    match peel(ty) {
        Type::Reference(r) if r.mutability.is_none() => match peel(&r.elem) {
            Type::Slice(s) => Some((Form::Slice, (*s.elem).clone())),
            inner => vec_of(inner).map(|k| (Form::VecRef, k)),
        },
        Type::ImplTrait(t) => t.bounds.iter().find_map(|b| match b {
            syn::TypeParamBound::Trait(tb) => {
                let last = tb.path.segments.last()?;
                if last.ident != "IntoIterator" {
                    return None;
                }
                let PathArguments::AngleBracketed(a) = &last.arguments else {
                    return None;
                };
                a.args.iter().find_map(|g| match g {
                    GenericArgument::AssocType(at) if at.ident == "Item" => {
                        Some((Form::Iter, at.ty.clone()))
                    }
                    _ => None,
                })
            }
            _ => None,
        }),
        other => vec_of(other).map(|k| (Form::Vec, k)),
    }
}

/// `K` of `Vec<K>`.
fn vec_of(ty: &Type) -> Option<Type> {
    let Type::Path(p) = peel(ty) else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Vec" {
        return None;
    }
    first_type(&last.arguments)
}

fn first_type(args: &PathArguments) -> Option<Type> {
    let PathArguments::AngleBracketed(a) = args else {
        return None;
    };
    a.args.iter().find_map(|g| match g {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    })
}

fn peel(ty: &Type) -> &Type {
    match ty {
        Type::Paren(t) => peel(&t.elem),
        Type::Group(t) => peel(&t.elem),
        other => other,
    }
}

/// The linked function's return type: `ret` with its collection of
/// pairs replaced by `Option<V>`.
fn one_return(ret: &Type) -> Option<Type> {
    if let Some(value) = pairs_value(ret) {
        return Some(syn::parse_quote!(::core::option::Option<#value>));
    }
    let Type::Path(p) = peel(ret) else {
        return None;
    };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let mut out = p.clone();
    let last = out.path.segments.last_mut()?;
    let PathArguments::AngleBracketed(a) = &mut last.arguments else {
        return None;
    };
    let first = a.args.iter_mut().find_map(|g| match g {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    })?;
    let value = pairs_value(first)?;
    *first = syn::parse_quote!(::core::option::Option<#value>);
    Some(Type::Path(out))
}

/// Whether `ty` is spelled as a type that is surely not a collection of
/// pairs, nor a `Result` of one (an alias or a struct is left to the
/// runtime's trait).
fn not_pairs(ty: &Type) -> bool {
    match peel(ty) {
        Type::Tuple(_) | Type::Array(_) | Type::Slice(_) | Type::Reference(_) => true,
        Type::Path(p) => {
            let Some(last) = p.path.segments.last() else {
                return false;
            };
            match last.ident.to_string().as_str() {
                "Result" => first_type(&last.arguments).is_some_and(|t| not_pairs(&t)),
                "Vec" => pairs_value(ty).is_none(),
                "HashMap" | "BTreeMap" => false,
                "Option" | "String" | "str" | "bool" | "char" | "HashSet" | "BTreeSet"
                | "VecDeque" | "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16"
                | "i32" | "i64" | "i128" | "isize" | "f32" | "f64" => true,
                _ => false,
            }
        }
        _ => false,
    }
}

/// `V` of `HashMap<K, V>`, `BTreeMap<K, V>` or `Vec<(K, V)>`.
fn pairs_value(ty: &Type) -> Option<Type> {
    let Type::Path(p) = peel(ty) else { return None };
    let last = p.path.segments.last()?;
    let PathArguments::AngleBracketed(a) = &last.arguments else {
        return None;
    };
    let types: Vec<&Type> = a
        .args
        .iter()
        .filter_map(|g| match g {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    match last.ident.to_string().as_str() {
        "HashMap" | "BTreeMap" => types.get(1).map(|t| (*t).clone()),
        "Vec" => match peel(types.first()?) {
            Type::Tuple(t) if t.elems.len() == 2 => t.elems.iter().nth(1).cloned(),
            _ => None,
        },
        _ => None,
    }
}

/// The name of the hidden function that names a batch function's
/// entries, shared with its linked single-key function.
pub(crate) fn entries_fn(batch: &Ident) -> Ident {
    format_ident!(
        "__cachette_entries_of_{}",
        syn::ext::IdentExt::unraw(batch),
        span = Span::call_site()
    )
}

/// How the body is given the elements that missed, as `collection`.
pub(crate) fn given(form: Form) -> TokenStream {
    match form {
        Form::Slice => quote!(&__cachette_missing[..]),
        Form::VecRef => quote!(&__cachette_missing),
        Form::Vec | Form::Iter => quote!(__cachette_missing),
    }
}

/// The elements of the collection, owned, as an iterator.
pub(crate) fn elements(b: &Batch) -> TokenStream {
    let c = &b.collection;
    match b.form {
        Form::Iter => quote!(::core::iter::IntoIterator::into_iter(#c)),
        _ => quote!(::core::iter::Iterator::cloned(#c.iter())),
    }
}

/// The linked single-key function: the batch function's parameters with
/// the collection replaced by one element; its calls are gathered into
/// calls of the batch function (which reads and fills the entries), and
/// each takes its element's value. Its companions call the batch
/// function's with that one element.
pub(crate) fn linked(
    func: &ItemFn,
    b: &Batch,
    group: TokenStream,
    preamble: TokenStream,
    cache: TokenStream,
    policy: TokenStream,
    private: &TokenStream,
) -> Option<TokenStream> {
    let (one, ret) = b.one.as_ref()?;
    let batch_ident = &func.sig.ident;
    let element = &b.element;
    let element_ty = &b.element_ty;
    let mut inputs: syn::punctuated::Punctuated<FnArg, syn::Token![,]> = Default::default();
    let mut args = Vec::new();
    let mut gather = true;
    for input in &func.sig.inputs {
        let FnArg::Typed(pt) = input else { return None };
        match &*pt.pat {
            Pat::Ident(pi) if pi.ident == b.collection => {
                inputs.push(syn::parse_quote!(#element: #element_ty));
                args.push(given(b.form));
            }
            Pat::Ident(pi) => {
                // A `&mut` (a connection, perhaps a transaction) or an
                // `impl Trait` that may be one: not gathered, since a
                // gathered call reads through its first caller's.
                if matches!(&*pt.ty, Type::Reference(r) if r.mutability.is_some())
                    || matches!(&*pt.ty, Type::ImplTrait(_))
                {
                    gather = false;
                }
                let mut pt = pt.clone();
                pt.attrs.clear();
                let ident = &pi.ident;
                inputs.push(FnArg::Typed(pt));
                args.push(quote!(#ident));
            }
            _ => return None,
        }
    }
    let batch_ret = match &func.sig.output {
        syn::ReturnType::Type(_, ty) => ty.to_token_stream(),
        syn::ReturnType::Default => return None,
    };
    let mut sig = func.sig.clone();
    sig.ident = one.clone();
    sig.inputs = inputs;
    sig.output = syn::parse_quote!(-> #ret);
    let doc = format!(
        " One element of `{batch_ident}`, whose entries it reads and fills: the calls made \
         within one scheduling tick of each other (with the same other arguments) are \
         gathered into one call of `{batch_ident}`. `None`: not found."
    );
    // The companions call this function, which then calls the batch
    // function at once, for its one element, under the companion.
    let vis = &func.vis;
    let synthesized: ItemFn = syn::parse_quote!(#vis #sig {});
    let companions = crate::companions::companions(
        &synthesized,
        &crate::companions::Callee::Free,
        private,
        false,
    );
    Some(quote! {
        #[doc = #doc]
        #vis #sig {
            const __CACHETTE_POLICY: #private::Policy = #policy;
            #preamble
            #cache
            // Rendered before the await: what renders it is not `Send`.
            let __cachette_group: ::std::string::String = #group;
            #private::load_one::<#batch_ret, _, _, _>(
                __cachette_cache,
                &__cachette_fn,
                __cachette_group,
                #element,
                &__CACHETTE_POLICY,
                #gather,
                move |__cachette_missing: ::std::vec::Vec<#element_ty>| async move {
                    #batch_ident(#(#args),*).await
                },
            )
            .await
        }
        #companions
    })
}
