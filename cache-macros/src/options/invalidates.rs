//! The options of `#[invalidates]`, typed and checked: the keys, and the
//! calls of `#[cached]` functions whose entries are busted.

use proc_macro2::{Span, TokenStream};
use syn::{Expr, Ident};

use super::{Common, Written, WrittenCommon};
use crate::ctxt::Ctxt;
use crate::values::{self, Name, Once, Value};

/// The options of `#[invalidates]`, checked. An option refused with an
/// error is absent; nothing is generated while errors remain.
pub(crate) struct InvalidatesOptions {
    pub common: Common,
    pub keys: Vec<Name>,
    /// Calls of `#[cached]` functions whose entries are busted.
    pub calls: Vec<Expr>,
    /// A function from the result to more keys.
    pub keys_from: Option<Expr>,
}

impl InvalidatesOptions {
    /// Parses the arguments; see `options::parse`.
    pub(crate) fn parse(args: TokenStream, site: Span, errors: &mut Ctxt) -> Option<Self> {
        super::parse::<WrittenInvalidates>(args, site, errors)
    }
}

/// The options as written, each at most once, with its span.
#[derive(Default)]
struct WrittenInvalidates {
    common: WrittenCommon,
    keys: Once<Vec<Name>>,
    calls: Once<Vec<Expr>>,
    keys_from: Once<Expr>,
}

impl Written for WrittenInvalidates {
    const ATTR: &'static str = "#[invalidates]";
    const OPTIONS: &'static [&'static str] = &[
        "keys",
        "tags",
        "calls",
        "tags_from",
        "keys_from",
        "not_a_transaction",
        "cache",
        "crate",
    ];
    type Checked = InvalidatesOptions;

    fn one(&mut self, name: &Ident, value: Value, errors: &mut Ctxt) {
        match name.to_string().as_str() {
            "keys" => {
                if let Some(v) = values::name_list(errors, name, &value) {
                    self.keys.set(errors, name, v);
                }
            }
            "calls" => {
                if let Some(v) = values::call_list(errors, name, &value) {
                    self.calls.set(errors, name, v);
                }
            }
            "keys_from" => {
                if let Some(v) = values::expr(errors, name, value) {
                    self.keys_from.set(errors, name, v);
                }
            }
            _ => self.common.one(name, value, errors),
        }
    }

    /// No option depends on another.
    fn check(self, _site: Span, _errors: &mut Ctxt) -> InvalidatesOptions {
        InvalidatesOptions {
            common: self.common.check(),
            keys: self.keys.into_inner().unwrap_or_default(),
            calls: self.calls.into_inner().unwrap_or_default(),
            keys_from: self.keys_from.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn options_are_typed() {
        let mut errors = Ctxt::default();
        let o = InvalidatesOptions::parse(
            quote!(keys = ["a:<x>", "b:<y>"], tags = ["org:<org>"], ttl = 5),
            Span::call_site(),
            &mut errors,
        )
        .expect("parses");
        assert_eq!(o.keys.len(), 2);
        assert_eq!(o.common.tags.len(), 1);
        let all: Vec<String> = errors
            .check()
            .err()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default();
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(
            all[0].contains("unknown option `ttl` for #[invalidates]"),
            "{all:?}"
        );
    }
}
