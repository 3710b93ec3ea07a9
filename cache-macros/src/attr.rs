//! The attribute's arguments, parsed into typed options that keep their
//! spans so later errors point at the offending tokens.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{bracketed, Expr, ExprLit, Ident, Lit, LitStr, Token};

/// Collects every error, to report them all at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    pub(crate) fn at(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(syn::Error::new(span, msg));
    }

    pub(crate) fn finish(self) -> Option<syn::Error> {
        self.0
    }
}

/// An option that may be given once.
pub(crate) struct Once<T>(Option<(T, Span)>);

impl<T> Default for Once<T> {
    fn default() -> Self {
        Once(None)
    }
}

impl<T> Once<T> {
    pub(crate) fn set(&mut self, errors: &mut Errors, name: &Ident, value: T) {
        if self.0.is_some() {
            errors.at(name.span(), format!("duplicate option `{name}`"));
        } else {
            self.0 = Some((value, name.span()));
        }
    }

    pub(crate) fn get(&self) -> Option<&T> {
        self.0.as_ref().map(|(v, _)| v)
    }

    pub(crate) fn span(&self) -> Option<Span> {
        self.0.as_ref().map(|(_, s)| *s)
    }

    pub(crate) fn take(self) -> Option<T> {
        self.0.map(|(v, _)| v)
    }
}

/// The right-hand side of `name = ...`.
pub(crate) enum Value {
    List(Span, Vec<Expr>),
    Expr(Expr),
}

impl Value {
    fn span(&self) -> Span {
        match self {
            Value::List(span, _) => *span,
            Value::Expr(e) => e.span(),
        }
    }
}

/// One `name = value` argument.
pub(crate) struct Arg {
    pub name: Ident,
    pub value: Value,
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name = Ident::parse_any(input)?;
        input
            .parse::<Token![=]>()
            .map_err(|_| syn::Error::new(name.span(), format!("expected `{name} = ...`")))?;
        let value = if input.peek(syn::token::Bracket) {
            let content;
            let bracket = bracketed!(content in input);
            let items = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
            Value::List(bracket.span.join(), items.into_iter().collect())
        } else {
            Value::Expr(input.parse()?)
        };
        Ok(Arg { name, value })
    }
}

pub(crate) fn parse_args(input: ParseStream) -> syn::Result<Vec<Arg>> {
    Ok(Punctuated::<Arg, Token![,]>::parse_terminated(input)?
        .into_iter()
        .collect())
}

/// Expects a string literal.
pub(crate) fn string(errors: &mut Errors, name: &Ident, value: &Value) -> Option<LitStr> {
    match value {
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        })) => Some(s.clone()),
        other => {
            errors.at(
                other.span(),
                format!("`{name}` must be a string literal, such as {name} = \"user:<id>\""),
            );
            None
        }
    }
}

/// Expects a list of string literals: `[ "a", "b" ]`.
pub(crate) fn string_list(errors: &mut Errors, name: &Ident, value: &Value) -> Option<Vec<LitStr>> {
    match value {
        Value::List(_, items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => out.push(s.clone()),
                    other => errors.at(
                        other.span(),
                        format!("each of `{name}` must be a string literal template, such as \"org:<org>\""),
                    ),
                }
            }
            Some(out)
        }
        Value::Expr(e) => {
            errors.at(
                e.span(),
                format!(
                    "`{name}` must be a list of string templates, such as {name} = [\"org:<org>\"]"
                ),
            );
            None
        }
    }
}

/// Expects `true` or `false`.
pub(crate) fn boolean(errors: &mut Errors, name: &Ident, value: &Value) -> Option<bool> {
    match value {
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        })) => Some(b.value),
        other => {
            errors.at(other.span(), format!("`{name}` must be `true` or `false`"));
            None
        }
    }
}

/// Expects an expression (not a list).
pub(crate) fn expr(errors: &mut Errors, name: &Ident, value: Value) -> Option<Expr> {
    match value {
        Value::Expr(e) => Some(e),
        Value::List(span, _) => {
            errors.at(
                span,
                format!("`{name}` must be an expression such as `self.cache`"),
            );
            None
        }
    }
}

/// A TTL: whole seconds (`300`) or a duration string (`"90s"`, `"5m"`,
/// `"24h"`, `"1d"`, `"1h30m"`).
pub(crate) fn ttl(errors: &mut Errors, name: &Ident, value: &Value) -> Option<u64> {
    const HELP: &str =
        "expected whole seconds such as `300`, or a string such as \"90s\", \"5m\", \"24h\"";
    let parsed = match value {
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        })) => {
            if !i.suffix().is_empty() {
                Err(format!("bad `{name}`: no type suffix allowed; {HELP}"))
            } else {
                i.base10_parse::<u64>()
                    .map_err(|_| format!("bad `{name}`: {HELP}"))
            }
        }
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        })) => parse_duration(&s.value())
            .ok_or_else(|| format!("bad `{name}` {:?}: {HELP}", s.value())),
        _ => Err(format!("bad `{name}`: {HELP}")),
    };
    match parsed {
        Ok(0) => {
            errors.at(
                value.span(),
                format!("`{name}` must be at least one second"),
            );
            None
        }
        Ok(secs) => Some(secs),
        Err(msg) => {
            errors.at(value.span(), msg);
            None
        }
    }
}

fn parse_duration(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        digits.clear();
        any = true;
    }
    (any && digits.is_empty()).then_some(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        use super::parse_duration as p;
        assert_eq!(p("90s"), Some(90));
        assert_eq!(p("5m"), Some(300));
        assert_eq!(p("24h"), Some(86_400));
        assert_eq!(p("1h30m"), Some(5_400));
        assert_eq!(p("1d"), Some(86_400));
        for bad in ["", "5", "5x", "m", "1.5h", "-1s"] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
