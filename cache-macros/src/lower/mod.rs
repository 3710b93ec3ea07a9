//! From an attribute's options and its function to the attribute's model
//! (`model.rs`), every check made on the way: `cached.rs` lowers
//! `#[cached]`, `invalidates.rs` `#[invalidates]`. What both do is here:
//! where the function is, the `async` check, its parameters, the parsing
//! of keys and tags against them. Each error is recorded in the `Ctxt`
//! with its span, and the lowering goes on, so that all are reported at
//! once; a model is returned only when none was. Nothing here generates.

pub(crate) mod cached;
mod calls;
pub(crate) mod invalidates;
pub(crate) mod params;
mod returns;

use proc_macro2::Span;
use syn::{Expr, FnArg, ItemFn};

use crate::companions::Callee;
use crate::ctxt::Ctxt;
use crate::model::{Function, Rendered};
use crate::options::Common;
use crate::template;
use crate::values::Name;
use params::{parameters, Param};

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

impl<'a> Context<'a> {
    /// Where an error about the attribute as a whole points: the attribute,
    /// or, inside `#[cached_impl]`, the method's name.
    fn site(&self, func: &ItemFn) -> Span {
        if self.in_impl {
            func.sig.ident.span()
        } else {
            Span::call_site()
        }
    }

    fn callee(&self, func: &ItemFn) -> Callee<'a> {
        let method = matches!(func.sig.inputs.first(), Some(FnArg::Receiver(_)));
        match self.trait_path {
            Some(t) => Callee::Trait(t),
            None if self.in_impl || method => Callee::Associated,
            None => Callee::Free,
        }
    }
}

/// What both attributes check of the function, before its keys and tags.
struct Lowered<'a> {
    function: Function<'a>,
    /// The parameters as placeholder roots.
    names: Vec<String>,
    typed: Vec<Param>,
}

/// The impl's cache where the attribute names none (in `common`), the
/// `async` check, the parameters.
fn function<'a>(
    errors: &mut Ctxt,
    attr: &str,
    func: &'a ItemFn,
    attr_text: &'a str,
    common: &mut Common,
    context: &Context<'a>,
) -> Lowered<'a> {
    if common.cache.is_none() {
        common.cache = context.cache.cloned();
    }
    if func.sig.asyncness.is_none() {
        errors.at(
            func.sig.fn_token.span,
            format!("{attr} needs an `async fn`: the cache is reached asynchronously"),
        );
    }
    let (names, typed) = parameters(func);
    let opaque = typed
        .iter()
        .filter(|p| p.opaque)
        .filter_map(|p| p.ident.clone())
        .filter(|i| !common.not_a_transaction.contains(i))
        .collect();
    Lowered {
        function: Function {
            func,
            attr_text,
            callee: context.callee(func),
            in_impl: context.in_impl,
            opaque,
        },
        names,
        typed,
    }
}

/// A key or tag checked against the parameters (`names`); `None`, with
/// the error recorded, if its template is refused.
fn render(errors: &mut Ctxt, name: &Name, names: &[String]) -> Option<Rendered> {
    match name {
        Name::Template(lit) => match template::parse(lit, names) {
            Ok(t) => Some(Rendered::Template(t)),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        Name::Named(s) => Some(Rendered::Named(s.clone())),
    }
}

/// Every one of `list` that `render` accepts.
fn render_all(errors: &mut Ctxt, list: &[Name], names: &[String]) -> Vec<Rendered> {
    list.iter()
        .filter_map(|n| render(errors, n, names))
        .collect()
}
