//! `#[invalidates(calls = [...])]`: each call, rewritten to call the key
//! companion that takes its arguments by name or in the callee's order.

use syn::spanned::Spanned;
use syn::Expr;

use crate::companions::{by_name, in_order, KEY_SUFFIX};
use crate::ctxt::Ctxt;

/// An entry of `calls` (checked in `values.rs` to be a call or a method
/// call), with the function's name replaced by a key companion's. The
/// call keeps its spans, so that an unknown function, or wrong arguments,
/// are reported there.
///
/// A call of one positional argument goes to `f_key`. A call of several,
/// all plain variables, goes to the companion named after them in that
/// order, which exists only if they are `f`'s parameters' names in `f`'s
/// order (`price(tenant, sku)`): read positionally or by name, it means the
/// same, and the other order is a compile error. A call that names any
/// argument (`price(tenant = t, sku = s)`) takes every argument by name
/// (a plain variable standing for itself), in any order. So two arguments
/// of one type are never swapped unseen.
pub(crate) fn key_call(call: &Expr, errors: &mut Ctxt) -> Option<Expr> {
    let mut call = call.clone();
    let (ident, args) = match &mut call {
        Expr::Call(c) => match &mut *c.func {
            Expr::Path(p) => match p.path.segments.last_mut() {
                Some(last) => (&mut last.ident, &mut c.args),
                None => return None,
            },
            _ => return None,
        },
        Expr::MethodCall(m) => (&mut m.method, &mut m.args),
        _ => return None,
    };
    let named_any = args.iter().any(|a| matches!(a, Expr::Assign(_)));
    if args.len() <= 1 && !named_any {
        *ident = syn::Ident::new(
            &format!("{}{}", syn::ext::IdentExt::unraw(&*ident), KEY_SUFFIX),
            ident.span(),
        );
        return Some(call);
    }
    let mut named: Vec<(String, Expr)> = Vec::new();
    let f = ident.to_string();
    for arg in args.iter() {
        let (name, value) = match arg {
            Expr::Assign(a) => match &*a.left {
                Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                    (p.path.get_ident().expect("checked"), (*a.right).clone())
                }
                other => {
                    errors.at(
                        other.span(),
                        format!("expected a parameter of `{f}`, as in `{f}(id = ...)`"),
                    );
                    continue;
                }
            },
            Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                (p.path.get_ident().expect("checked"), arg.clone())
            }
            other => {
                errors.at(
                    other.span(),
                    format!(
                        "name this argument after its parameter of `{f}`, as in \
                         `{f}(param = value, ...)`: a call in `calls` with several arguments \
                         passes plain variables of the parameters' names, in `{f}`'s order, or \
                         names them, so that two arguments of one type are never swapped unseen"
                    ),
                );
                continue;
            }
        };
        let name = syn::ext::IdentExt::unraw(name).to_string();
        if named.iter().any(|(n, _)| *n == name) {
            errors.at(arg.span(), format!("`{name}` is given twice"));
            continue;
        }
        named.push((name, value));
    }
    if named_any {
        named.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
    *ident = if named_any {
        by_name(ident, &names)
    } else {
        in_order(ident, &names)
    };
    *args = named.into_iter().map(|(_, v)| v).collect();
    Some(call)
}
