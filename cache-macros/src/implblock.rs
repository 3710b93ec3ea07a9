//! `#[cached_impl]`: one cache for every `#[cached]` and `#[invalidates]`
//! method of an impl block, and a place for their companions when the
//! block implements a trait (whose impl may hold only the trait's items:
//! they go to an inherent impl of the same type, with the same generics).

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::parse::Parser;
use syn::{Expr, ImplItem, ItemFn, ItemImpl};

use crate::ctxt::Ctxt;
use crate::expand::{expand, Expanded, Kind};
use crate::lower::Context;
use crate::values::{self, Once};

pub(crate) fn run(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut block: ItemImpl = match syn::parse2(item.clone()) {
        Ok(b) => b,
        Err(_) => {
            let err = syn::Error::new(
                Span::call_site(),
                "#[cached_impl] applies to an impl block: `#[cached_impl(cache = self.cache)] impl Repo { ... }`",
            )
            .to_compile_error();
            return quote!(#err #item);
        }
    };
    let mut errors = Ctxt::default();
    let cache = options(args, &mut errors);
    let trait_path = block.trait_.as_ref().map(|(path, _)| path.clone());
    let context = Context {
        in_impl: true,
        trait_path: trait_path.as_ref(),
        cache: cache.as_ref(),
    };
    let mut siblings = TokenStream::new();
    // The attributes' paths as written: they are expanded here, and their
    // imports are still used.
    let mut used = Vec::new();
    for item in &mut block.items {
        let ImplItem::Fn(method) = item else { continue };
        let Some(at) = method.attrs.iter().position(|a| kind_of(a).is_some()) else {
            continue;
        };
        let attr = method.attrs.remove(at);
        let kind = kind_of(&attr).expect("found above");
        let path = attr.path().clone();
        let written = path.to_token_stream().to_string();
        if !used
            .iter()
            .any(|p: &syn::Path| p.to_token_stream().to_string() == written)
        {
            used.push(path);
        }
        let args = match &attr.meta {
            syn::Meta::List(list) => list.tokens.clone(),
            _ => TokenStream::new(),
        };
        let func: ItemFn = match syn::parse2(method.to_token_stream()) {
            Ok(f) => f,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let text = args.to_string();
        match expand(kind, args, &func, &text, &context) {
            Ok(Expanded {
                item: expanded,
                siblings: beside,
            }) => {
                *item = ImplItem::Verbatim(expanded);
                siblings.extend(beside);
            }
            Err(e) => errors.push(e),
        }
    }
    let errors = errors.check().err().map(|e| e.to_compile_error());
    let uses = used.iter().map(|path| {
        quote! {
            #[allow(unused_imports)]
            use #path as _;
        }
    });
    let errors = quote!(#errors #(#uses)*);
    if trait_path.is_some() {
        let (generics, self_ty) = (&block.generics, &block.self_ty);
        let (impl_generics, _, where_clause) = generics.split_for_impl();
        let inherent = (!siblings.is_empty()).then(|| {
            quote! {
                impl #impl_generics #self_ty #where_clause {
                    #siblings
                }
            }
        });
        quote!(#errors #block #inherent)
    } else {
        block.items.push(ImplItem::Verbatim(siblings));
        quote!(#errors #block)
    }
}

/// Which of the attributes `attr` is, by the last segment of its path
/// (`cached`, `cachette::cached`, ...).
fn kind_of(attr: &syn::Attribute) -> Option<Kind> {
    let last = attr.path().segments.last()?;
    match last.ident.to_string().as_str() {
        "cached" => Some(Kind::Cached),
        "invalidates" => Some(Kind::Invalidates),
        _ => None,
    }
}

/// `cache = <expr>`, the only option.
fn options(args: TokenStream, errors: &mut Ctxt) -> Option<Expr> {
    let args = match values::parse_args.parse2(args) {
        Ok(args) => args,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let mut cache = Once::default();
    for values::Arg { name, value } in args {
        if name == "cache" {
            if let Some(v) = values::expr(errors, &name, value) {
                cache.set(errors, &name, v);
            }
        } else {
            errors.at(
                name.span(),
                format!("unknown option `{name}` for #[cached_impl]: expected `cache`"),
            );
        }
    }
    cache.into_inner()
}
