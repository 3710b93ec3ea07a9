//! `names! { pub tag OrgTag = "org:<org>"; }`: a key or tag declared once,
//! as a struct with one field per placeholder, so that the reader and the
//! writer name it the same way (`tags = [OrgTag { org }]`), and a
//! misspelled name or field is a compile error rather than two tags that
//! never meet.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Ident, LitStr, Token, Visibility};

use crate::template;

/// One declaration: `#[doc] pub tag OrgTag = "org:<org>";`.
struct Declared {
    attrs: Vec<Attribute>,
    vis: Visibility,
    key: bool,
    ident: Ident,
    template: LitStr,
}

struct Input(Vec<Declared>);

impl Parse for Input {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut out = Vec::new();
        while !input.is_empty() {
            let attrs = input.call(Attribute::parse_outer)?;
            let vis: Visibility = input.parse()?;
            let kind: Ident = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected `tag Name = \"...\";` or `key Name = \"...\";`",
                )
            })?;
            let key = match kind.to_string().as_str() {
                "tag" => false,
                "key" => true,
                other => {
                    return Err(syn::Error::new(
                        kind.span(),
                        format!(
                        "expected `tag` or `key`, not `{other}`: `pub tag OrgTag = \"org:<org>\";`"
                    ),
                    ))
                }
            };
            let ident: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            let template: LitStr = input.parse()?;
            input.parse::<Token![;]>()?;
            out.push(Declared {
                attrs,
                vis,
                key,
                ident,
                template,
            });
        }
        Ok(Input(out))
    }
}

pub(crate) fn run(input: TokenStream) -> TokenStream {
    let input: Input = match syn::parse2(input) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    input
        .0
        .iter()
        .map(|d| declare(d).unwrap_or_else(|e| e.to_compile_error()))
        .collect()
}

fn declare(d: &Declared) -> syn::Result<TokenStream> {
    let text = d.template.value();
    // The placeholders, in order of first appearance: the fields.
    let mut fields: Vec<String> = Vec::new();
    let mut rest = text.as_str();
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else { break };
        let name = &after[..close];
        if name.contains('.') {
            return Err(syn::Error::new(
                d.template.span(),
                format!(
                    "`<{name}>`: a declared name's placeholders are its fields, plain names such \
                     as `<id>`; pass `id = row.id` where it is used"
                ),
            ));
        }
        if !fields.iter().any(|f| f == name) {
            fields.push(name.to_string());
        }
        rest = &after[close + 1..];
    }
    let parsed = template::parse(&d.template, &fields)?;
    let (attrs, vis, ident) = (&d.attrs, &d.vis, &d.ident);
    let field_idents: Vec<Ident> = fields
        .iter()
        .map(|f| Ident::new(f, d.template.span()))
        .collect();
    let params: Vec<Ident> = (0..fields.len())
        .map(|i| format_ident!("P{}", i, span = Span::call_site()))
        .collect();
    let pieces = &parsed.pieces;
    let holes = parsed.roots.iter().map(|r| {
        let f = Ident::new(r, d.template.span());
        quote!(&self.#f as &dyn ::core::fmt::Display)
    });
    let (kind, marker) = if d.key {
        ("key", quote!(::cachette::KeyName))
    } else {
        ("tag", quote!(::cachette::TagName))
    };
    let example = {
        let shown = fields.join(", ");
        format!("{ident} {{ {shown} }}")
    };
    let doc = format!(
        " The {kind} `{text}`: `{example}` renders it, escaping each field as the attributes \
         escape placeholders."
    );
    let generics = if params.is_empty() {
        quote!()
    } else {
        quote!(<#(#params),*>)
    };
    let bounded = if params.is_empty() {
        quote!()
    } else {
        quote!(<#(#params: ::core::fmt::Display),*>)
    };
    Ok(quote! {
        #(#attrs)*
        #[doc = ""]
        #[doc = #doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #vis struct #ident #generics {
            #(
                #[allow(missing_docs)]
                #vis #field_idents: #params,
            )*
        }
        impl #bounded ::core::fmt::Display for #ident #generics {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(&::cachette::__private::render(&[#(#pieces),*], &[#(#holes),*]))
            }
        }
        #[diagnostic::do_not_recommend]
        impl #bounded #marker for #ident #generics {}
    })
}
