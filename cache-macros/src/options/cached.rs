//! The options of `#[cached]`, typed and checked: the key, the TTLs, the
//! strategy and its tuning, the codec, the per-value hooks.

use proc_macro2::{Span, TokenStream};
use syn::{Expr, Ident};

use super::{Common, Written, WrittenCommon};
use crate::ctxt::Ctxt;
use crate::values::{self, Name, Once, Value};

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

/// The options of `#[cached]`, checked. An option refused with an error is
/// absent; nothing is generated while errors remain.
pub(crate) struct CachedOptions {
    pub common: Common,
    pub key: Option<Name>,
    /// Parameters that do not shape the result (`unkeyed = [pool]`).
    pub unkeyed: Vec<Ident>,
    /// The entry's TTL in milliseconds (required unless given as an
    /// expression).
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
    /// How long a call waits for the body before returning the kept value
    /// (milliseconds), and where it was written.
    pub soft_timeout: Option<(u64, Span)>,
    /// How long a call waits at most (milliseconds), and where it was
    /// written.
    pub hard_timeout: Option<(u64, Span)>,
    pub stale_ttl: Option<u64>,
    pub lock_ttl: Option<u64>,
    pub lock_wait: Option<u64>,
    pub beta: Option<f64>,
    pub strategy: Strategy,
    /// Where `strategy` was written.
    pub strategy_span: Option<Span>,
    /// Where `cache_none = true` was written.
    pub cache_none: Option<Span>,
    /// A batch function (`batch = "id in ids"`): the element's name, the
    /// collection parameter, and where it was written.
    pub batch: Option<(Ident, Ident, Span)>,
    /// The single-key function generated beside a batch function, sharing
    /// its entries (`one = get_user`).
    pub one: Option<Ident>,
}

impl CachedOptions {
    /// Parses the arguments; see `options::parse`.
    pub(crate) fn parse(args: TokenStream, site: Span, errors: &mut Ctxt) -> Option<Self> {
        super::parse::<WrittenCached>(args, site, errors)
    }
}

/// The options as written, each at most once, with its span.
#[derive(Default)]
struct WrittenCached {
    common: WrittenCommon,
    key: Once<Name>,
    unkeyed: Once<Vec<Ident>>,
    ttl: Once<u64>,
    ttl_expr: Once<Expr>,
    ttl_fn: Once<Expr>,
    unless: Once<Expr>,
    none_ttl: Once<u64>,
    stale_if_error: Once<u64>,
    soft_timeout: Once<u64>,
    hard_timeout: Once<u64>,
    codec: Once<Ident>,
    version: Once<u32>,
    stale_ttl: Once<u64>,
    lock_ttl: Once<u64>,
    lock_wait: Once<u64>,
    beta: Once<f64>,
    strategy: Once<Strategy>,
    cache_none: Once<bool>,
    batch: Once<(Ident, Ident)>,
    one: Once<Ident>,
    /// `ttl` was written, even if its value was refused.
    ttl_given: bool,
    /// `strategy` was written, even if its value was refused.
    strategy_given: bool,
}

impl Written for WrittenCached {
    const ATTR: &'static str = "#[cached]";
    const OPTIONS: &'static [&'static str] = &[
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
        "soft_timeout",
        "hard_timeout",
        "codec",
        "version",
        "ttl_fn",
        "unless",
        "tags_from",
        "unkeyed",
        "not_a_transaction",
        "batch",
        "one",
        "crate",
    ];
    type Checked = CachedOptions;

    fn one(&mut self, name: &Ident, value: Value, errors: &mut Ctxt) {
        match name.to_string().as_str() {
            "key" => {
                if let Some(v) = values::name(errors, name, &value) {
                    self.key.set(errors, name, v);
                }
            }
            "unkeyed" => {
                if let Some(v) = values::ident_list(errors, name, &value) {
                    self.unkeyed.set(errors, name, v);
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
            "stale_ttl" | "lock_ttl" | "lock_wait" | "none_ttl" | "stale_if_error"
            | "soft_timeout" | "hard_timeout" => {
                if let Some(v) = values::duration_ms(errors, name, &value, false) {
                    let slot = match name.to_string().as_str() {
                        "stale_ttl" => &mut self.stale_ttl,
                        "lock_ttl" => &mut self.lock_ttl,
                        "lock_wait" => &mut self.lock_wait,
                        "none_ttl" => &mut self.none_ttl,
                        "soft_timeout" => &mut self.soft_timeout,
                        "hard_timeout" => &mut self.hard_timeout,
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
            "ttl_fn" | "unless" => {
                if let Some(v) = values::expr(errors, name, value) {
                    let slot = if name == "ttl_fn" {
                        &mut self.ttl_fn
                    } else {
                        &mut self.unless
                    };
                    slot.set(errors, name, v);
                }
            }
            "cache_none" => {
                if let Some(v) = values::boolean(errors, name, &value) {
                    self.cache_none.set(errors, name, v);
                }
            }
            "batch" => {
                if let Some(v) = values::string(errors, name, &value) {
                    match parse_batch(&v.value(), v.span()) {
                        Some(pair) => self.batch.set(errors, name, pair),
                        None => errors.at(
                            v.span(),
                            format!(
                                "`batch` names the element and the collection parameter it comes \
                                 from, as in `batch = \"id in ids\"`, not {:?}",
                                v.value()
                            ),
                        ),
                    }
                }
            }
            "one" => match &value {
                Value::Expr(Expr::Path(p)) if p.qself.is_none() && p.path.get_ident().is_some() => {
                    let ident = p.path.get_ident().expect("checked").clone();
                    self.one.set(errors, name, ident);
                }
                _ => errors.at(
                    name.span(),
                    "`one` names the single-key function to generate beside this batch \
                     function, as in `one = get_user`",
                ),
            },
            _ => self.common.one(name, value, errors),
        }
    }

    fn check(self, site: Span, errors: &mut Ctxt) -> CachedOptions {
        if !self.ttl_given {
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
            self.check_tuning(strategy, errors);
        }
        let cache_none = match (self.cache_none.get(), self.cache_none.span()) {
            (Some(true), span) => span,
            _ => None,
        };
        if let (Some(span), None) = (self.one.span(), self.batch.get()) {
            errors.at(
                span,
                "`one` generates the single-key function of a batch function: it needs \
                 `batch = \"id in ids\"`",
            );
        }
        if let Some(span) = self.batch.span() {
            if matches!(strategy, Strategy::Swr | Strategy::Early) {
                errors.at(
                    self.strategy.span().unwrap_or(span),
                    format!(
                        "a batch function takes strategy = \"aside\" or \"lock\", not \"{}\": \
                         serving stale elements and refreshing them in the background is not \
                         supported for batches",
                        strategy.as_str()
                    ),
                );
            }
            if let Some(at) = self.stale_if_error.span() {
                errors.at(at, "`stale_if_error` is not supported on a batch function");
            }
            for (name, at) in [
                ("soft_timeout", self.soft_timeout.span()),
                ("hard_timeout", self.hard_timeout.span()),
            ] {
                if let Some(at) = at {
                    errors.at(at, format!("`{name}` is not supported on a batch function"));
                }
            }
        }
        self.check_timeouts(errors);
        let batch = self
            .batch
            .get()
            .cloned()
            .zip(self.batch.span())
            .map(|((e, c), s)| (e, c, s));
        CachedOptions {
            common: self.common.check(),
            key: self.key.into_inner(),
            unkeyed: self.unkeyed.into_inner().unwrap_or_default(),
            none_ttl: self.none_ttl.get().copied().zip(self.none_ttl.span()),
            codec: self.codec.into_inner(),
            version: self.version.into_inner(),
            stale_if_error: self
                .stale_if_error
                .get()
                .copied()
                .zip(self.stale_if_error.span()),
            soft_timeout: self
                .soft_timeout
                .get()
                .copied()
                .zip(self.soft_timeout.span()),
            hard_timeout: self
                .hard_timeout
                .get()
                .copied()
                .zip(self.hard_timeout.span()),
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
            cache_none,
            batch,
            one: self.one.into_inner(),
        }
    }
}

/// `"id in ids"`: the element's name and the collection parameter's.
fn parse_batch(text: &str, span: Span) -> Option<(Ident, Ident)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let ident = |w: &str| {
        syn::parse_str::<Ident>(w)
            .ok()
            .map(|i| Ident::new(&i.to_string(), span))
    };
    match words.as_slice() {
        [element, "in", collection] => Some((ident(element)?, ident(collection)?)),
        _ => None,
    }
}

impl WrittenCached {
    /// Refuses timeouts that could never act as written.
    fn check_timeouts(&self, errors: &mut Ctxt) {
        // Zero was refused as a duration already.
        let (soft, hard) = (self.soft_timeout.get(), self.hard_timeout.get());
        if let (Some(at), None) = (self.soft_timeout.span(), self.stale_if_error.get()) {
            errors.at(
                at,
                "`soft_timeout` returns the value kept past its TTL while the body goes on in \
                 the background, and only `stale_if_error` keeps one: add \
                 `stale_if_error = \"...\"` (how long past the TTL a value may still be \
                 returned)",
            );
        }
        if let (Some(&soft), Some(&hard), Some(at)) = (soft, hard, self.soft_timeout.span()) {
            if soft >= hard {
                errors.at(
                    at,
                    "`soft_timeout` must be shorter than `hard_timeout`: past the hard timeout \
                     the call has already returned its error",
                );
            }
        }
    }

    /// Refuses the options that tune a strategy other than `strategy`.
    fn check_tuning(&self, strategy: Strategy, errors: &mut Ctxt) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn parse_ok(args: TokenStream) -> CachedOptions {
        let mut errors = Ctxt::default();
        let options = CachedOptions::parse(args, Span::call_site(), &mut errors).expect("parses");
        assert!(errors.is_empty(), "unexpected errors");
        options
    }

    fn messages(args: TokenStream) -> Vec<String> {
        let mut errors = Ctxt::default();
        CachedOptions::parse(args, Span::call_site(), &mut errors);
        errors
            .check()
            .err()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn options_are_typed() {
        let o = parse_ok(quote!(
            key = "user:<id>",
            ttl = "5m",
            tags = ["org:<org>"],
            strategy = "swr",
            stale_ttl = "1h"
        ));
        assert!(matches!(o.key, Some(Name::Template(t)) if t.value() == "user:<id>"));
        assert_eq!(o.ttl, Some(300_000));
        assert_eq!(o.stale_ttl, Some(3_600_000));
        assert!(o.strategy == Strategy::Swr && o.strategy.refreshes());
        assert_eq!(o.common.tags.len(), 1);
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let all = messages(quote!(
            strategy = "fast",
            keys = ["x"],
            lock_wait = "1s",
            ttl = 0
        ));
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(all[0].contains("unknown strategy"), "{all:?}");
        assert!(all[1].contains("unknown option `keys`"), "{all:?}");
        assert!(all[2].contains("at least one millisecond"), "{all:?}");
        let all = messages(quote!(key = "k", lock_wait = "1s"));
        assert!(all.iter().any(|m| m.contains("needs a `ttl`")), "{all:?}");
        assert!(
            all.iter()
                .any(|m| m.contains("`lock_wait` applies only with strategy = \"lock\"")),
            "{all:?}"
        );
    }
}
