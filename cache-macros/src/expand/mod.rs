//! Each attribute from its tokens to its wrapper, in three steps: lower
//! (`lower::cached::from_ast`, `lower::invalidates::from_ast`: the options
//! and the function checked into a model, every error recorded), check
//! (`Ctxt::check`: all errors at once, and nothing generated), generate
//! (`cached.rs`, `invalidates.rs`, from the model; `shared.rs` holds what
//! both generate, `refresh.rs` the background refresh of `swr` and
//! `early`).

mod cached;
mod invalidates;
mod refresh;
mod shared;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::ItemFn;

use crate::ctxt::Ctxt;
use crate::lower::{self, Context};
pub(crate) use shared::Expanded;

/// Which attribute is expanded.
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
}

/// The attribute on a function, as the compiler gives it: the function
/// expanded, or, beside the errors, the function unchanged.
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

/// Lowers, checks, generates; `attr_text` is the attribute's arguments as
/// written.
pub(crate) fn expand(
    kind: Kind,
    args: TokenStream,
    func: &ItemFn,
    attr_text: &str,
    context: &Context<'_>,
) -> syn::Result<Expanded> {
    let mut ctxt = Ctxt::default();
    match kind {
        Kind::Cached => {
            let model = lower::cached::from_ast(&mut ctxt, args, func, attr_text, context);
            ctxt.check()?;
            Ok(cached::generate(&model.expect("no error, so a model")))
        }
        Kind::Invalidates => {
            let model = lower::invalidates::from_ast(&mut ctxt, args, func, attr_text, context);
            ctxt.check()?;
            Ok(invalidates::generate(&model.expect("no error, so a model")))
        }
    }
}
