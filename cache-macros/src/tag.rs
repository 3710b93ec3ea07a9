//! `tag!("author:<author>", author = ...)`: a key or tag rendered at run
//! time exactly as the attributes render their templates, checked when
//! compiling: every placeholder is given, every argument is used.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitStr, Token};

use crate::template;

struct Input {
    template: LitStr,
    args: Vec<(Ident, Expr)>,
}

impl Parse for Input {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let template: LitStr = input.parse()?;
        let mut args = Vec::new();
        if input.parse::<Option<Token![,]>>()?.is_some() {
            let pairs = Punctuated::<NamedArg, Token![,]>::parse_terminated(input)?;
            args = pairs.into_iter().map(|a| (a.name, a.value)).collect();
        }
        Ok(Input { template, args })
    }
}

struct NamedArg {
    name: Ident,
    value: Expr,
}

impl Parse for NamedArg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        input.parse::<Token![=]>().map_err(|_| {
            syn::Error::new(
                name.span(),
                format!("expected `{name} = <value>`: each placeholder is given by name"),
            )
        })?;
        Ok(NamedArg {
            name,
            value: input.parse()?,
        })
    }
}

pub(crate) fn run(input: TokenStream) -> TokenStream {
    match expand(input) {
        Ok(tokens) => tokens,
        Err(e) => e.to_compile_error(),
    }
}

fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let Input { template, args } = syn::parse2(input)?;
    let names: Vec<String> = args.iter().map(|(n, _)| n.to_string()).collect();
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(syn::Error::new(
                args[i].0.span(),
                format!("`{name}` is given twice"),
            ));
        }
    }
    let parsed = template::parse(&template, &names).map_err(|e| {
        // The template's words are a function's; here they are arguments.
        let msg = e
            .to_string()
            .replace("the parameters are", "the arguments are")
            .replace("the function has no parameters", "no argument is given");
        syn::Error::new(template.span(), msg)
    })?;
    let text = template.value();
    for (name, _) in &args {
        let used = text.contains(&format!("<{name}>")) || text.contains(&format!("<{name}."));
        if !used {
            return Err(syn::Error::new(
                name.span(),
                format!("`{name}` is not a placeholder of {text:?}"),
            ));
        }
    }
    // Bound all at once, so that no value can read another's binding.
    let names = args
        .iter()
        .map(|(name, _)| Ident::new(&name.to_string(), template.span()));
    let values = args
        .iter()
        .map(|(_, value)| quote_spanned!(syn::spanned::Spanned::span(value)=> &(#value)));
    let pieces = &parsed.pieces;
    let span = parsed.span;
    let holes = parsed
        .holes
        .iter()
        .map(|h| quote_spanned!(span=> (&&::cachette::__private::Hole(#h)).__cachette_hole() as &dyn ::core::fmt::Display));
    Ok(quote! {{
        #[allow(unused_parens)]
        let (#(#names,)*) = (#(#values,)*);
        #[allow(unused_imports)]
        use ::cachette::__private::{HoleKey as _, HoleTag as _, HoleValue as _};
        ::cachette::__private::render(&[#(#pieces),*], &[#(#holes),*])
    }})
}
