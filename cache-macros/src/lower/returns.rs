//! The return type of a `#[cached]` function: present, owned, and, where
//! its spelling tells, suited to the options that need a `None` or an
//! error. Which results are cached is decided by the type itself, through
//! the runtime's selector traits, not here.

use proc_macro2::Span;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{ItemFn, Type};

use crate::ctxt::Ctxt;
use crate::options::cached::CachedOptions;

/// Checks that a `#[cached]` function has something to cache. Which of
/// its results are cached is decided by the type itself, through the
/// runtime's selector traits, not by how the type is spelled here.
pub(crate) fn check_return_type(ret: Option<&Type>, func: &ItemFn, errors: &mut Ctxt) {
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
enum Shape {
    Option,
    ResultOption,
    Result,
    /// Neither (a number, a `String`, a `Vec`, a tuple, a reference).
    Plain,
    /// A type the spelling does not tell (a struct, or an alias).
    Unknown,
}

fn shape(ty: &Type) -> Shape {
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
pub(crate) fn check_shape(ty: &Type, opts: &CachedOptions, errors: &mut Ctxt) {
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
fn borrowed(ty: &Type) -> Option<Span> {
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
