//! Token helpers shared by what generates: spans moved onto tokens the
//! attribute writes, and the rendering of a template.

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;

use crate::template::Template;

/// `tokens` (written by the attribute), every one of them spanned at
/// `span`; pass a span located where errors should point and resolved at
/// the call site.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let proc_macro2::TokenTree::Group(g) = &tree {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tree = proc_macro2::TokenTree::Group(group);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

/// `render(&[pieces], &[&value as &dyn Display, ...])`, spanned on the
/// template so a missing `Display` is reported there.
pub(crate) fn render_call(t: &Template, private: &TokenStream) -> TokenStream {
    let pieces = &t.pieces;
    let holes = t
        .holes
        .iter()
        .map(|h| quote_spanned!(t.span=> (&&#private::Hole(#h)).__cachette_hole() as &dyn ::core::fmt::Display));
    quote_spanned!(t.span=> {
        #[allow(unused_imports)]
        use #private::{HoleKey as _, HoleTag as _, HoleValue as _};
        #private::render(&[#(#pieces),*], &[#(#holes),*])
    })
}
