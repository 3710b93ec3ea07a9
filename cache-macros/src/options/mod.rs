//! The typed options of the attributes: `cached.rs` for `#[cached]`,
//! `invalidates.rs` for `#[invalidates]`. What both read is here: the
//! reading of the arguments (each option known, given once), and the
//! options both take (`tags`, `tags_from`, `not_a_transaction`, `cache`,
//! `crate`). Every error is recorded with its span; what depends on the
//! function as well is checked in `lower/`.

pub(crate) mod cached;
pub(crate) mod invalidates;

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::{Expr, Ident};

use crate::ctxt::Ctxt;
use crate::values::{self, Name, Once, Value};

/// The options of one attribute as written: each at most once, with its
/// span.
trait Written: Default {
    /// The attribute, as errors name it (`#[cached]`).
    const ATTR: &'static str;
    /// Its options, in the order an unknown one's error lists them.
    const OPTIONS: &'static [&'static str];
    /// The options, checked.
    type Checked;

    /// Reads one option, listed in `OPTIONS`.
    fn one(&mut self, name: &Ident, value: Value, errors: &mut Ctxt);

    /// Checks what depends on several options, and keeps the values.
    fn check(self, site: Span, errors: &mut Ctxt) -> Self::Checked;
}

/// Parses an attribute's arguments into its options, recording every
/// error; `None` when they are not even `name = value` pairs (then nothing
/// more is said about them).
///
/// `site` is where an error about the attribute as a whole points (the
/// attribute, or the method's name inside `#[cached_impl]`).
fn parse<W: Written>(args: TokenStream, site: Span, errors: &mut Ctxt) -> Option<W::Checked> {
    match values::parse_args.parse2(args) {
        Ok(args) => Some(read::<W>(args, errors).check(site, errors)),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

fn read<W: Written>(args: Vec<values::Arg>, errors: &mut Ctxt) -> W {
    let mut w = W::default();
    for values::Arg { name, value } in args {
        let n = name.to_string();
        if !W::OPTIONS.contains(&n.as_str()) {
            let expected = W::OPTIONS
                .iter()
                .map(|o| format!("`{o}`"))
                .collect::<Vec<_>>()
                .join(", ");
            errors.at(
                name.span(),
                format!(
                    "unknown option `{n}` for {}: expected one of {expected}",
                    W::ATTR
                ),
            );
            continue;
        }
        w.one(&name, value, errors);
    }
    w
}

/// The options both attributes take, checked. An option refused with an
/// error is absent; nothing is generated while errors remain.
pub(crate) struct Common {
    pub tags: Vec<Name>,
    /// A function from the result to more tags.
    pub tags_from: Option<Expr>,
    /// `&mut` parameters that are never a transaction
    /// (`not_a_transaction = [conn]`).
    pub not_a_transaction: Vec<Ident>,
    pub cache: Option<Expr>,
    /// The path of the `cachette` crate (`crate = "..."`).
    pub krate: Option<syn::Path>,
}

/// `Common` as written.
#[derive(Default)]
struct WrittenCommon {
    tags: Once<Vec<Name>>,
    tags_from: Once<Expr>,
    not_a_transaction: Once<Vec<Ident>>,
    cache: Once<Expr>,
    krate: Once<syn::Path>,
}

impl WrittenCommon {
    /// Reads one of the options both attributes take.
    fn one(&mut self, name: &Ident, value: Value, errors: &mut Ctxt) {
        match name.to_string().as_str() {
            "tags" => {
                if let Some(v) = values::name_list(errors, name, &value) {
                    self.tags.set(errors, name, v);
                }
            }
            "not_a_transaction" => {
                if let Some(v) = values::ident_list(errors, name, &value) {
                    self.not_a_transaction.set(errors, name, v);
                }
            }
            // Expressions, given as written.
            "cache" | "tags_from" => {
                if let Some(v) = values::expr(errors, name, value) {
                    let slot = if name == "cache" {
                        &mut self.cache
                    } else {
                        &mut self.tags_from
                    };
                    slot.set(errors, name, v);
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
            _ => unreachable!("listed in the attribute's OPTIONS"),
        }
    }

    fn check(self) -> Common {
        Common {
            tags: self.tags.into_inner().unwrap_or_default(),
            tags_from: self.tags_from.into_inner(),
            not_a_transaction: self.not_a_transaction.into_inner().unwrap_or_default(),
            cache: self.cache.into_inner(),
            krate: self.krate.into_inner(),
        }
    }
}
