//! Key and tag templates, checked against the function's parameters at
//! compile time. The grammar is the runtime's `KeyBuilder`'s: both run the
//! cases of `cache-runtime/src/template_cases.txt`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote_spanned};
use syn::LitStr;

/// A template split into literal pieces and the placeholder expressions
/// between them: `pieces.len() == holes.len() + 1`.
pub(crate) struct Template {
    pub pieces: Vec<String>,
    pub holes: Vec<TokenStream>,
    /// The parameter each placeholder starts from (`id` of `<id.0>`).
    pub roots: Vec<String>,
    pub span: Span,
}

/// Whether a character of literal text can separate two placeholders
/// (escaped values never contain it).
fn is_separator(c: char) -> bool {
    !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '%'))
}

/// Parses `lit`, resolving each `<name>` or `<name.field>` against `params`.
pub(crate) fn parse(lit: &LitStr, params: &[String]) -> syn::Result<Template> {
    let text = lit.value();
    let span = lit.span();
    let err = |msg: String| syn::Error::new(span, msg);
    let mut pieces = vec![String::new()];
    let mut holes = Vec::new();
    let mut roots = Vec::new();
    let mut prev_hole: Option<String> = None;
    let mut rest = text.as_str();
    while let Some(open) = rest.find(['<', '>']) {
        if rest.as_bytes()[open] == b'>' {
            return Err(err(format!("`>` without a matching `<` in {text:?}")));
        }
        let lit_text = &rest[..open];
        let after = &rest[open + 1..];
        let close = after
            .find('>')
            .ok_or_else(|| err(format!("`<` without a matching `>` in {text:?}")))?;
        let name = &after[..close];
        if let Some(prev) = &prev_hole {
            if !lit_text.chars().any(is_separator) {
                return Err(err(format!(
                    "placeholders `<{prev}>` and `<{name}>` must be separated by a character \
                     such as `:` (letters, digits, `_`, `.`, `-` and `%` can appear inside \
                     values, so keys would collide)"
                )));
            }
        }
        pieces.last_mut().expect("never empty").push_str(lit_text);
        holes.push(placeholder(name, params, span)?);
        roots.push(name.split('.').next().unwrap_or_default().to_string());
        pieces.push(String::new());
        prev_hole = Some(name.to_string());
        rest = &after[close + 1..];
    }
    pieces.last_mut().expect("never empty").push_str(rest);
    Ok(Template {
        pieces,
        holes,
        roots,
        span,
    })
}

/// The expression of one placeholder: `&param` or `&param.field.field`.
fn placeholder(name: &str, params: &[String], span: Span) -> syn::Result<TokenStream> {
    let segments: Vec<&str> = name.split('.').collect();
    let valid_ident = |s: &str| {
        s.starts_with(|c: char| c.is_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_alphanumeric() || c == '_')
    };
    let valid_field =
        |s: &str| valid_ident(s) || (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit()));
    if !valid_ident(segments[0]) || !segments[1..].iter().all(|s| valid_field(s)) {
        return Err(syn::Error::new(
            span,
            format!("`<{name}>` is not a placeholder: expected `<param>` or `<param.field>`"),
        ));
    }
    let root = segments[0];
    if !params.iter().any(|p| p == root) {
        let listed = if params.is_empty() {
            "the function has no parameters".to_string()
        } else {
            format!(
                "the parameters are: {}",
                params
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let hint = params
            .iter()
            .filter(|p| distance(p, root) <= 2)
            .min_by_key(|p| distance(p, root))
            .map(|p| format!("; did you mean `<{p}>`?"))
            .unwrap_or_default();
        return Err(syn::Error::new(
            span,
            format!("unknown placeholder `<{name}>`: {listed}{hint}"),
        ));
    }
    let root = if root == "self" {
        quote_spanned!(span=> self)
    } else {
        let ident = format_ident!("{}", root, span = span);
        quote_spanned!(span=> #ident)
    };
    let fields = segments[1..].iter().map(|f| {
        if f.chars().all(|c| c.is_ascii_digit()) {
            let index = syn::Index {
                index: f.parse().expect("digits"),
                span,
            };
            quote_spanned!(span=> .#index)
        } else {
            let ident = format_ident!("{}", f, span = span);
            quote_spanned!(span=> .#ident)
        }
    });
    Ok(quote_spanned!(span=> &#root #(#fields)*))
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    /// The grammar's shared table, which the runtime runs too. Every
    /// placeholder's root is made a parameter, so only the grammar is
    /// checked here.
    #[test]
    fn the_shared_grammar_cases() {
        let cases = include_str!("../../cache-runtime/src/template_cases.txt");
        for line in cases.lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (expected, template) = line
                .split_once('\t')
                .expect("`ok` or `err`, a tab, the template");
            let params: Vec<String> = template
                .split('<')
                .skip(1)
                .filter_map(|s| s.split(['>', '.']).next())
                .map(str::to_string)
                .collect();
            let lit = syn::LitStr::new(template, proc_macro2::Span::call_site());
            let parsed = super::parse(&lit, &params);
            assert_eq!(
                parsed.is_ok(),
                expected == "ok",
                "{template:?}: {:?}",
                parsed.err().map(|e| e.to_string())
            );
        }
    }
}
