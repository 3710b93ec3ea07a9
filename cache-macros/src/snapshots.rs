//! Snapshots of what the attributes generate, pretty-printed, checked in
//! under `tests/expand/`. `CACHETTE_BLESS=1 cargo test -p cache-macros`
//! rewrites them after a deliberate change; review the diff.

use crate::expand::{run, Kind};
use quote::quote;

fn check(
    name: &str,
    kind: Kind,
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
    in_impl: bool,
) {
    let expanded = run(kind, args, item);
    let file = if in_impl {
        quote!(impl Repo { #expanded })
    } else {
        expanded
    };
    let file: syn::File = syn::parse2(file).expect("the expansion parses");
    let pretty = prettyplease::unparse(&file);
    let path = format!("{}/tests/expand/{name}.rs", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("CACHETTE_BLESS").is_some() {
        std::fs::write(&path, &pretty).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{path} is missing: run with CACHETTE_BLESS=1"));
    assert_eq!(
        pretty, expected,
        "the expansion of {name} changed; rerun with CACHETTE_BLESS=1 and review"
    );
}

#[test]
fn cached_with_key_and_tags() {
    check(
        "cached_get_user",
        Kind::Cached,
        quote!(key = "user:<id>", ttl = 300, tags = ["org:<org>"]),
        quote! {
            async fn get_user(id: u64, org: &str) -> Result<User, DbError> {
                db::load_user(id).await
            }
        },
        false,
    );
}

#[test]
fn cached_batch_with_a_linked_function() {
    check(
        "cached_batch_get_users",
        Kind::Cached,
        quote!(
            batch = "id in ids",
            key = "user:<id>",
            ttl = 300,
            tags = ["org:<org>"],
            one = get_user
        ),
        quote! {
            async fn get_users(org: &str, ids: &[u64]) -> Result<HashMap<u64, User>, DbError> {
                db::load_users(org, ids).await
            }
        },
        false,
    );
}

#[test]
fn invalidates_keys_and_tags() {
    check(
        "invalidates_update_user",
        Kind::Invalidates,
        quote!(keys = ["user:<id>"], tags = ["org:<org>"]),
        quote! {
            async fn update_user(id: u64, org: &str, patch: Patch) -> Result<User, DbError> {
                db::update_user(id, patch).await
            }
        },
        false,
    );
}

#[test]
fn swr_method_with_its_refresh_sibling() {
    check(
        "cached_swr_method",
        Kind::Cached,
        quote!(
            cache = self.cache,
            key = "catalog:<shop>",
            ttl = "5m",
            strategy = "swr",
            stale_ttl = "1h"
        ),
        quote! {
            pub async fn catalog(&self, shop: &str) -> Result<Vec<Product>, DbError> {
                self.db.products(shop).await
            }
        },
        true,
    );
}

#[test]
fn default_key() {
    check(
        "cached_default_key",
        Kind::Cached,
        quote!(ttl = 60),
        quote! {
            async fn price(sku: &str, currency: Currency) -> Option<u64> {
                lookup(sku, currency).await
            }
        },
        false,
    );
}

#[test]
fn cached_with_options() {
    check(
        "cached_with_options",
        Kind::Cached,
        quote!(
            key = "user:<id>",
            ttl = settings().user_ttl,
            stale_if_error = "10m",
            codec = "postcard",
            version = 2,
            ttl_fn = ttl_for,
            unless = User::is_guest,
            tags_from = |u: &User| [tag!("team:<t>", t = u.team)]
        ),
        quote! {
            async fn get_user(id: u64) -> Result<User, DbError> {
                db::load_user(id).await
            }
        },
        false,
    );
}
