//! The typed arguments of `#[cached]` and `#[invalidates]`: every option
//! checked once here, every error collected with its span. What depends
//! on the function as well is checked in `lower.rs`; `expand.rs`
//! generates.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::{Expr, Ident};

use crate::values::{self, Errors, Name, Once, Value};

/// Which attribute is expanded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Cached,
    Invalidates,
}

impl Kind {
    pub(crate) fn attr_name(self) -> &'static str {
        match self {
            Kind::Cached => "#[cached]",
            Kind::Invalidates => "#[invalidates]",
        }
    }

    fn options(self) -> &'static [&'static str] {
        match self {
            Kind::Cached => &[
                "key",
                "ttl",
                "tags",
                "strategy",
                "stale_ttl",
                "lock_ttl",
                "lock_wait",
                "beta",
                "cache",
                "cache_none",
                "none_ttl",
                "stale_if_error",
                "codec",
                "version",
                "ttl_fn",
                "unless",
                "tags_from",
                "unkeyed",
                "not_a_transaction",
                "crate",
            ],
            Kind::Invalidates => &[
                "keys",
                "tags",
                "calls",
                "tags_from",
                "keys_from",
                "not_a_transaction",
                "cache",
                "crate",
            ],
        }
    }
}

/// How a `#[cached]` function fills and refreshes its entry.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Strategy {
    #[default]
    Aside,
    Lock,
    Swr,
    Early,
}

impl Strategy {
    const ALL: [Strategy; 4] = [
        Strategy::Aside,
        Strategy::Lock,
        Strategy::Swr,
        Strategy::Early,
    ];

    /// As written in the attribute.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Strategy::Aside => "aside",
            Strategy::Lock => "lock",
            Strategy::Swr => "swr",
            Strategy::Early => "early",
        }
    }

    /// The runtime's variant.
    pub(crate) fn variant(self) -> Ident {
        let name = match self {
            Strategy::Aside => "Aside",
            Strategy::Lock => "Lock",
            Strategy::Swr => "Swr",
            Strategy::Early => "Early",
        };
        Ident::new(name, Span::call_site())
    }

    /// Whether hits may start a background refresh.
    pub(crate) fn refreshes(self) -> bool {
        matches!(self, Strategy::Swr | Strategy::Early)
    }

    fn parse(text: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The options of either attribute, checked. An option refused with an
/// error is absent; the caller generates nothing while errors remain.
pub(crate) struct Options {
    pub key: Option<Name>,
    pub keys: Vec<Name>,
    /// Calls of `#[cached]` functions whose entries are busted.
    pub calls: Vec<Expr>,
    /// A function from the result to more tags.
    pub tags_from: Option<Expr>,
    /// A function from the result to more keys (`#[invalidates]`).
    pub keys_from: Option<Expr>,
    pub tags: Vec<Name>,
    /// Parameters that do not shape the result (`unkeyed = [pool]`).
    pub unkeyed: Vec<Ident>,
    /// `&mut` parameters that are never a transaction
    /// (`not_a_transaction = [conn]`).
    pub not_a_transaction: Vec<Ident>,
    /// The entry's TTL in milliseconds (`#[cached]`, required unless
    /// given as an expression).
    pub ttl: Option<u64>,
    /// The TTL as an expression of type `Duration`, evaluated per call.
    pub ttl_expr: Option<Expr>,
    /// A function from the stored value to its TTL.
    pub ttl_fn: Option<Expr>,
    /// A function from the stored value to "do not store it".
    pub unless: Option<Expr>,
    /// `None`'s TTL in milliseconds, and where it was written.
    pub none_ttl: Option<(u64, Span)>,
    /// The codec's variant (`codec = "postcard"`).
    pub codec: Option<Ident>,
    /// The version recorded in every entry (`version = 2`).
    pub version: Option<u32>,
    /// How long past its TTL an entry is kept for a failing body, in
    /// milliseconds, and where it was written.
    pub stale_if_error: Option<(u64, Span)>,
    pub stale_ttl: Option<u64>,
    pub lock_ttl: Option<u64>,
    pub lock_wait: Option<u64>,
    pub beta: Option<f64>,
    pub strategy: Strategy,
    /// Where `strategy` was written.
    pub strategy_span: Option<Span>,
    pub cache: Option<Expr>,
    /// Where `cache_none = true` was written.
    pub cache_none: Option<Span>,
    /// The path of the `cachette` crate (`crate = "..."`).
    pub krate: Option<syn::Path>,
}

/// Parses the attribute's arguments into options, recording every error;
/// `None` when they are not even `name = value` pairs (then nothing more
/// is said about them).
///
/// `site` is where an error about the attribute as a whole points (the
/// attribute, or the method's name inside `#[cached_impl]`).
pub(crate) fn parse(
    kind: Kind,
    args: TokenStream,
    site: Span,
    errors: &mut Errors,
) -> Option<Options> {
    match values::parse_args.parse2(args) {
        Ok(args) => Some(Written::read(kind, args, errors).check(kind, site, errors)),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

/// The options as written, each at most once, with its span.
#[derive(Default)]
struct Written {
    key: Once<Name>,
    keys: Once<Vec<Name>>,
    calls: Once<Vec<Expr>>,
    tags_from: Once<Expr>,
    keys_from: Once<Expr>,
    tags: Once<Vec<Name>>,
    unkeyed: Once<Vec<Ident>>,
    not_a_transaction: Once<Vec<Ident>>,
    ttl: Once<u64>,
    ttl_expr: Once<Expr>,
    ttl_fn: Once<Expr>,
    unless: Once<Expr>,
    none_ttl: Once<u64>,
    stale_if_error: Once<u64>,
    codec: Once<Ident>,
    version: Once<u32>,
    stale_ttl: Once<u64>,
    lock_ttl: Once<u64>,
    lock_wait: Once<u64>,
    beta: Once<f64>,
    strategy: Once<Strategy>,
    cache: Once<Expr>,
    cache_none: Once<bool>,
    krate: Once<syn::Path>,
    /// `ttl` was written, even if its value was refused.
    ttl_given: bool,
    /// `strategy` was written, even if its value was refused.
    strategy_given: bool,
}

impl Written {
    fn read(kind: Kind, args: Vec<values::Arg>, errors: &mut Errors) -> Written {
        let mut w = Written::default();
        for values::Arg { name, value } in args {
            let n = name.to_string();
            if !kind.options().contains(&n.as_str()) {
                let expected = kind
                    .options()
                    .iter()
                    .map(|o| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                errors.at(
                    name.span(),
                    format!(
                        "unknown option `{n}` for {}: expected one of {expected}",
                        kind.attr_name()
                    ),
                );
                continue;
            }
            w.one(&name, value, errors);
        }
        w
    }

    fn one(&mut self, name: &Ident, value: Value, errors: &mut Errors) {
        match name.to_string().as_str() {
            "key" => {
                if let Some(v) = values::name(errors, name, &value) {
                    self.key.set(errors, name, v);
                }
            }
            "unkeyed" | "not_a_transaction" => {
                if let Some(v) = values::ident_list(errors, name, &value) {
                    let slot = if name == "unkeyed" {
                        &mut self.unkeyed
                    } else {
                        &mut self.not_a_transaction
                    };
                    slot.set(errors, name, v);
                }
            }
            "keys" | "tags" => {
                if let Some(v) = values::name_list(errors, name, &value) {
                    let slot = if name == "keys" {
                        &mut self.keys
                    } else {
                        &mut self.tags
                    };
                    slot.set(errors, name, v);
                }
            }
            "calls" => {
                if let Some(v) = values::call_list(errors, name, &value) {
                    self.calls.set(errors, name, v);
                }
            }
            "ttl" => {
                self.ttl_given = true;
                match value {
                    Value::Expr(Expr::Lit(_)) => {
                        if let Some(v) = values::duration_ms(errors, name, &value, false) {
                            self.ttl.set(errors, name, v);
                        }
                    }
                    // Any other expression: a `Duration`, per call.
                    value => {
                        if let Some(v) = values::expr(errors, name, value) {
                            self.ttl_expr.set(errors, name, v);
                        }
                    }
                }
            }
            "codec" => {
                if let Some(v) = values::string(errors, name, &value) {
                    let variant = match v.value().as_str() {
                        "json" => Some("Json"),
                        "postcard" => Some("Postcard"),
                        _ => None,
                    };
                    match variant {
                        Some(variant) => self.codec.set(errors, name, Ident::new(variant, v.span())),
                        None => errors.at(
                            v.span(),
                            format!(
                                r#"unknown codec {:?}: expected "json" or "postcard" (feature `postcard`)"#,
                                v.value()
                            ),
                        ),
                    }
                }
            }
            "version" => match &value {
                Value::Expr(Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(i),
                    ..
                })) if i.suffix().is_empty() && i.base10_parse::<u32>().is_ok() => {
                    let v = i.base10_parse::<u32>().expect("checked");
                    self.version.set(errors, name, v);
                }
                _ => errors.at(
                    name.span(),
                    "`version` must be a whole number such as `version = 2`: bump it when the stored type changes in a way its name does not show",
                ),
            },
            "stale_ttl" | "lock_ttl" | "lock_wait" | "none_ttl" | "stale_if_error" => {
                if let Some(v) = values::duration_ms(errors, name, &value, false) {
                    let slot = match name.to_string().as_str() {
                        "stale_ttl" => &mut self.stale_ttl,
                        "lock_ttl" => &mut self.lock_ttl,
                        "lock_wait" => &mut self.lock_wait,
                        "none_ttl" => &mut self.none_ttl,
                        _ => &mut self.stale_if_error,
                    };
                    slot.set(errors, name, v);
                }
            }
            "beta" => {
                if let Some(v) = values::positive_number(errors, name, &value) {
                    self.beta.set(errors, name, v);
                }
            }
            "strategy" => {
                if let Some(v) = values::string(errors, name, &value) {
                    self.strategy_given = true;
                    match Strategy::parse(&v.value()) {
                        Some(s) => self.strategy.set(errors, name, s),
                        None => errors.at(
                            v.span(),
                            format!(
                                r#"unknown strategy {:?}: expected one of "aside", "lock", "swr", "early""#,
                                v.value()
                            ),
                        ),
                    }
                }
            }
            // Expressions, given as written.
            "cache" | "tags_from" | "keys_from" | "ttl_fn" | "unless" => {
                if let Some(v) = values::expr(errors, name, value) {
                    let slot = match name.to_string().as_str() {
                        "cache" => &mut self.cache,
                        "tags_from" => &mut self.tags_from,
                        "keys_from" => &mut self.keys_from,
                        "ttl_fn" => &mut self.ttl_fn,
                        _ => &mut self.unless,
                    };
                    slot.set(errors, name, v);
                }
            }
            "cache_none" => {
                if let Some(v) = values::boolean(errors, name, &value) {
                    self.cache_none.set(errors, name, v);
                }
            }
            "crate" => {
                if let Some(v) = values::string(errors, name, &value) {
                    match v.parse::<syn::Path>() {
                        Ok(path) => self.krate.set(errors, name, path),
                        Err(_) => {
                            errors.at(v.span(), "`crate` must be a path, such as \"::cachette\"")
                        }
                    }
                }
            }
            _ => unreachable!("listed in Kind::options"),
        }
    }

    /// Checks what depends on several options, and keeps the values.
    fn check(self, kind: Kind, site: Span, errors: &mut Errors) -> Options {
        if kind == Kind::Cached && !self.ttl_given {
            errors.at(
                site,
                "#[cached] needs a `ttl`, such as `ttl = 300` or `ttl = \"5m\"`",
            );
        }
        if let (Some(false), Some(span), Some(_)) = (
            self.cache_none.get().copied(),
            self.cache_none.span(),
            self.none_ttl.get(),
        ) {
            errors.at(
                span,
                "`none_ttl` caches `None` for that long, and `cache_none = false` says not to: \
                 keep one of them",
            );
        }
        let strategy = self.strategy.get().copied().unwrap_or_default();
        // An unknown strategy was already reported.
        if !(self.strategy_given && self.strategy.get().is_none()) {
            let rules: [(&str, Option<Span>, &[Strategy]); 4] = [
                ("stale_ttl", self.stale_ttl.span(), &[Strategy::Swr]),
                ("lock_wait", self.lock_wait.span(), &[Strategy::Lock]),
                (
                    "lock_ttl",
                    self.lock_ttl.span(),
                    &[Strategy::Lock, Strategy::Swr, Strategy::Early],
                ),
                ("beta", self.beta.span(), &[Strategy::Early]),
            ];
            for (name, span, allowed) in rules {
                match span {
                    Some(span) if !allowed.contains(&strategy) => {
                        let list = allowed
                            .iter()
                            .map(|s| format!("strategy = \"{}\"", s.as_str()))
                            .collect::<Vec<_>>()
                            .join(" or ");
                        errors.at(
                            span,
                            format!(
                                "`{name}` applies only with {list} (this function uses \"{}\")",
                                strategy.as_str()
                            ),
                        );
                    }
                    _ => {}
                }
            }
        }
        let cache_none = match (self.cache_none.get(), self.cache_none.span()) {
            (Some(true), span) => span,
            _ => None,
        };
        Options {
            key: self.key.into_inner(),
            keys: self.keys.into_inner().unwrap_or_default(),
            calls: self.calls.into_inner().unwrap_or_default(),
            tags_from: self.tags_from.into_inner(),
            keys_from: self.keys_from.into_inner(),
            tags: self.tags.into_inner().unwrap_or_default(),
            unkeyed: self.unkeyed.into_inner().unwrap_or_default(),
            not_a_transaction: self.not_a_transaction.into_inner().unwrap_or_default(),
            none_ttl: self.none_ttl.get().copied().zip(self.none_ttl.span()),
            codec: self.codec.into_inner(),
            version: self.version.into_inner(),
            stale_if_error: self
                .stale_if_error
                .get()
                .copied()
                .zip(self.stale_if_error.span()),
            ttl: self.ttl.into_inner(),
            ttl_expr: self.ttl_expr.into_inner(),
            ttl_fn: self.ttl_fn.into_inner(),
            unless: self.unless.into_inner(),
            stale_ttl: self.stale_ttl.into_inner(),
            lock_ttl: self.lock_ttl.into_inner(),
            lock_wait: self.lock_wait.into_inner(),
            beta: self.beta.into_inner(),
            strategy,
            strategy_span: self.strategy.span(),
            cache: self.cache.into_inner(),
            cache_none,
            krate: self.krate.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn parse_ok(kind: Kind, args: TokenStream) -> Options {
        let mut errors = Errors::default();
        let options = parse(kind, args, Span::call_site(), &mut errors).expect("parses");
        assert!(errors.is_empty(), "unexpected errors");
        options
    }

    fn messages(kind: Kind, args: TokenStream) -> Vec<String> {
        let mut errors = Errors::default();
        parse(kind, args, Span::call_site(), &mut errors);
        errors
            .finish()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn options_are_typed() {
        let o = parse_ok(
            Kind::Cached,
            quote!(
                key = "user:<id>",
                ttl = "5m",
                tags = ["org:<org>"],
                strategy = "swr",
                stale_ttl = "1h"
            ),
        );
        assert!(matches!(o.key, Some(Name::Template(t)) if t.value() == "user:<id>"));
        assert_eq!(o.ttl, Some(300_000));
        assert_eq!(o.stale_ttl, Some(3_600_000));
        assert!(o.strategy == Strategy::Swr && o.strategy.refreshes());
        assert_eq!(o.tags.len(), 1);
        let o = parse_ok(Kind::Invalidates, quote!(keys = ["a:<x>", "b:<y>"]));
        assert_eq!(o.keys.len(), 2);
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let all = messages(
            Kind::Cached,
            quote!(strategy = "fast", keys = ["x"], lock_wait = "1s", ttl = 0),
        );
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(all[0].contains("unknown strategy"), "{all:?}");
        assert!(all[1].contains("unknown option `keys`"), "{all:?}");
        assert!(all[2].contains("at least one millisecond"), "{all:?}");
        let all = messages(Kind::Cached, quote!(key = "k", lock_wait = "1s"));
        assert!(all.iter().any(|m| m.contains("needs a `ttl`")), "{all:?}");
        assert!(
            all.iter()
                .any(|m| m.contains("`lock_wait` applies only with strategy = \"lock\"")),
            "{all:?}"
        );
    }
}
