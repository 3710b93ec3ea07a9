//! The syntax of an attribute's arguments (`name = value`, lists, string
//! literals, durations) and the reading of one value of each kind, its
//! errors recorded with their spans. `options/` reads the options of each
//! attribute with these.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{bracketed, Expr, ExprLit, Ident, Lit, LitStr, Token};

use crate::ctxt::Ctxt;

/// An option that may be given once.
pub(crate) struct Once<T>(Option<(T, Span)>);

impl<T> Default for Once<T> {
    fn default() -> Self {
        Once(None)
    }
}

impl<T> Once<T> {
    pub(crate) fn set(&mut self, errors: &mut Ctxt, name: &Ident, value: T) {
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

    pub(crate) fn into_inner(self) -> Option<T> {
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
pub(crate) fn string(errors: &mut Ctxt, name: &Ident, value: &Value) -> Option<LitStr> {
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

/// A key or tag as written: a template string, or a value of a name
/// declared with `cachette::names!` (a struct literal, whose fields the
/// compiler checks by name).
#[derive(Clone)]
pub(crate) enum Name {
    Template(LitStr),
    Named(syn::ExprStruct),
}

/// One key or tag: `"user:<id>"` or `UserKey { id }`.
fn name_of(errors: &mut Ctxt, name: &Ident, item: &Expr, list: bool) -> Option<Name> {
    let example = if name == "key" || name == "keys" {
        "\"user:<id>\" or `UserKey { id }`"
    } else {
        "\"org:<org>\" or `OrgTag { org }`"
    };
    match item {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(Name::Template(s.clone())),
        Expr::Struct(s) if s.rest.is_none() && s.qself.is_none() => Some(Name::Named(s.clone())),
        call @ (Expr::Call(_) | Expr::MethodCall(_)) if name == "keys" => {
            errors.at(
                call.span(),
                format!(
                    "each of `{name}` must be a template string or a declared name, such as {example}; \
                     to bust the entry a call of a #[cached] function reads, write \
                     `calls = [get_user(id = id)]`"
                ),
            );
            None
        }
        other => {
            let what = if list {
                format!("each of `{name}`")
            } else {
                format!("`{name}`")
            };
            errors.at(
                other.span(),
                format!(
                    "{what} must be a template string or a name declared with `cachette::names!`, \
                     such as {example}"
                ),
            );
            None
        }
    }
}

/// Expects one key: a template string or a declared name.
pub(crate) fn name(errors: &mut Ctxt, name: &Ident, value: &Value) -> Option<Name> {
    match value {
        Value::Expr(e) => name_of(errors, name, e, false),
        Value::List(span, _) => {
            errors.at(
                *span,
                format!("`{name}` must be one template, such as {name} = \"user:<id>\""),
            );
            None
        }
    }
}

/// Expects a list of keys or tags: `["org:<org>", OrgTag { org }]`.
pub(crate) fn name_list(errors: &mut Ctxt, name: &Ident, value: &Value) -> Option<Vec<Name>> {
    match value {
        Value::List(_, items) => Some(
            items
                .iter()
                .filter_map(|item| name_of(errors, name, item, true))
                .collect(),
        ),
        Value::Expr(e) => {
            errors.at(
                e.span(),
                format!(
                    "`{name}` must be a list of templates or declared names, such as {name} = [\"org:<org>\"]"
                ),
            );
            None
        }
    }
}

/// Expects a list of the function's parameters: `[pool, tx]`.
pub(crate) fn ident_list(errors: &mut Ctxt, name: &Ident, value: &Value) -> Option<Vec<Ident>> {
    let help =
        format!("`{name}` must be a list of the function's parameters, such as {name} = [pool]");
    match value {
        Value::List(_, items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                        out.push(p.path.get_ident().expect("checked").clone())
                    }
                    other => errors.at(other.span(), &help),
                }
            }
            Some(out)
        }
        Value::Expr(e) => {
            errors.at(e.span(), &help);
            None
        }
    }
}

/// Expects a list of calls: `[get_user(id), self.get_user(id)]`.
pub(crate) fn call_list(errors: &mut Ctxt, name: &Ident, value: &Value) -> Option<Vec<Expr>> {
    let help = "such as `get_user(cache = cache, id = id)` or `self.get_user(org = org, id = id)`";
    match value {
        Value::List(_, items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Expr::Call(c) if matches!(&*c.func, Expr::Path(p) if p.qself.is_none()) => {
                        out.push(item.clone())
                    }
                    Expr::MethodCall(_) => out.push(item.clone()),
                    other => errors.at(
                        other.span(),
                        format!(
                            "each of `{name}` must be a call of a #[cached] function, {help}: \
                             its entry is the one that call would read"
                        ),
                    ),
                }
            }
            Some(out)
        }
        Value::Expr(e) => {
            errors.at(
                e.span(),
                format!("`{name}` must be a list of calls of #[cached] functions, {help}"),
            );
            None
        }
    }
}

/// Expects `true` or `false`.
pub(crate) fn boolean(errors: &mut Ctxt, name: &Ident, value: &Value) -> Option<bool> {
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
pub(crate) fn expr(errors: &mut Ctxt, name: &Ident, value: Value) -> Option<Expr> {
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

/// A duration in milliseconds: whole seconds (`300`) or a string with
/// units (`"250ms"`, `"90s"`, `"5m"`, `"24h"`, `"1d"`, `"1h30m"`). With
/// `whole_seconds`, milliseconds are refused (the entry TTL).
pub(crate) fn duration_ms(
    errors: &mut Ctxt,
    name: &Ident,
    value: &Value,
    whole_seconds: bool,
) -> Option<u64> {
    let help = if whole_seconds {
        r#"expected whole seconds such as `300`, or a string such as "90s", "5m", "24h""#
    } else {
        r#"expected whole seconds such as `5`, or a string such as "250ms", "2s", "1m""#
    };
    let parsed = match value {
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        })) => {
            if !i.suffix().is_empty() {
                Err(format!("bad `{name}`: no type suffix allowed; {help}"))
            } else {
                i.base10_parse::<u64>()
                    .ok()
                    .and_then(|s| s.checked_mul(1000))
                    .ok_or_else(|| format!("bad `{name}`: {help}"))
            }
        }
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        })) => parse_duration(&s.value())
            .filter(|ms| !whole_seconds || ms % 1000 == 0)
            .ok_or_else(|| format!("bad `{name}` {:?}: {help}", s.value())),
        _ => Err(format!("bad `{name}`: {help}")),
    };
    match parsed {
        Ok(0) => {
            let least = if whole_seconds {
                "one second"
            } else {
                "one millisecond"
            };
            errors.at(value.span(), format!("`{name}` must be at least {least}"));
            None
        }
        Ok(ms) => Some(ms),
        Err(msg) => {
            errors.at(value.span(), msg);
            None
        }
    }
}

/// A positive number, such as XFetch's `beta`.
pub(crate) fn positive_number(errors: &mut Ctxt, name: &Ident, value: &Value) -> Option<f64> {
    let n = match value {
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        })) => f.base10_parse::<f64>().ok(),
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        })) => i.base10_parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.is_finite() && n > 0.0 => Some(n),
        _ => {
            errors.at(
                value.span(),
                format!("`{name}` must be a positive number such as `1.0`"),
            );
            None
        }
    }
}

/// Milliseconds in a duration string.
fn parse_duration(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut any = false;
    let mut chars = text.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            's' => 1000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
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
        assert_eq!(p("90s"), Some(90_000));
        assert_eq!(p("5m"), Some(300_000));
        assert_eq!(p("24h"), Some(86_400_000));
        assert_eq!(p("1h30m"), Some(5_400_000));
        assert_eq!(p("1d"), Some(86_400_000));
        assert_eq!(p("250ms"), Some(250));
        assert_eq!(p("1m30s"), Some(90_000));
        for bad in ["", "5", "5x", "m", "1.5h", "-1s", "ms5"] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
