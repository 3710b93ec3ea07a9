//! `#[invalidates]` lowered: its options and function checked together
//! into a `model::Invalidates`. Its keys and tags are parsed against the
//! parameters, `not_a_transaction` names `&mut` ones, and each of `calls`
//! is rewritten to the key companion that names its entry.

use proc_macro2::TokenStream;
use syn::{ItemFn, ReturnType};

use super::calls::key_call;
use super::params::{check_lists, roots};
use super::{function, render_all, Context, Lowered};
use crate::ctxt::Ctxt;
use crate::model::Invalidates;
use crate::options::invalidates::InvalidatesOptions;

/// The model of an `#[invalidates]` function; `None` when an error was
/// recorded (then `errors` holds it).
pub(crate) fn from_ast<'a>(
    errors: &mut Ctxt,
    args: TokenStream,
    func: &'a ItemFn,
    attr_text: &'a str,
    context: &Context<'a>,
) -> Option<Invalidates<'a>> {
    let mut opts = InvalidatesOptions::parse(args, context.site(func), errors)?;
    let Lowered {
        function,
        names,
        typed,
    } = function(
        errors,
        "#[invalidates]",
        func,
        attr_text,
        &mut opts.common,
        context,
    );
    let tags = render_all(errors, &opts.common.tags, &names);
    let keys = render_all(errors, &opts.keys, &names);
    // A template refused above says nothing of the parameters it uses.
    if tags.len() == opts.common.tags.len() {
        let used: Vec<String> = tags.iter().flat_map(roots).collect();
        check_lists(
            func,
            &[],
            &opts.common.not_a_transaction,
            &typed,
            &used,
            errors,
        );
    }
    let calls: Vec<syn::Expr> = opts
        .calls
        .iter()
        .filter_map(|c| key_call(c, errors))
        .collect();
    // A `&mut` argument may be a transaction: a bust through it, outside
    // `deferred`, comes before the commit. Declared `&mut` parameters are
    // known here; generic ones are checked when called (a `&mut *tx`
    // given to an `impl Executor`).
    let transaction = typed
        .iter()
        .filter(|p| p.mut_ref)
        .filter_map(|p| p.ident.as_ref())
        .find(|i| !opts.common.not_a_transaction.contains(i))
        .map(ToString::to_string);
    if !errors.is_empty() {
        return None;
    }
    let ret = match &func.sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some(&**ty),
    };
    Some(Invalidates {
        function,
        opts,
        keys,
        tags,
        calls,
        transaction,
        ret,
    })
}
