async fn get_users(org: &str, ids: &[u64]) -> Result<HashMap<u64, User>, DbError> {
    const __CACHETTE_POLICY: ::cachette::__private::Policy = ::cachette::__private::Policy::new(
            ::cachette::__private::Strategy::Aside,
            ::cachette::__private::ms(300000u64),
        )
        .template("user:<id>");
    #[allow(unused_imports)]
    use ::cachette::__private::{
        BustWhen as _, KeepClone as _, KeepDecoding as _, SelectOption as _,
        SelectPlain as _, SelectResult as _, SelectResultOption as _,
    };
    let __cachette_fn = __cachette_entries_of_get_users();
    let __cachette_cache: &::cachette::__private::Cache = &::cachette::__private::default_cache(
        &__cachette_fn,
    );
    let __cachette_mode = ::cachette::__private::OptionMode;
    let __cachette_keep = (&&::cachette::__private::keep_probe::<
        _,
        ::core::option::Option<
            <Result<
                HashMap<u64, User>,
                DbError,
            > as ::cachette::__private::BatchReturn>::Value,
        >,
    >(&__cachette_mode))
        .__cachette_keeper();
    let __cachette_through_mut: ::core::option::Option<&'static str> = ::core::option::Option::None;
    let __cachette_fixed_tags: [::std::string::String; 1usize] = [
        {
            #[allow(unused_imports)]
            use ::cachette::__private::{HoleKey as _, HoleTag as _, HoleValue as _};
            ::cachette::__private::render(
                &["org:", ""],
                &[
                    (&&::cachette::__private::Hole(&org)).__cachette_hole()
                        as &dyn ::core::fmt::Display,
                ],
            )
        },
    ];
    let __cachette_items: ::std::vec::Vec<::cachette::__private::BatchItem<u64>> = ::core::iter::Iterator::collect(
        ::core::iter::Iterator::map(
            ::core::iter::Iterator::cloned(ids.iter()),
            |id: u64| {
                let id = ::cachette::__private::batch_element(id);
                ::cachette::__private::BatchItem {
                    key: {
                        #[allow(unused_imports)]
                        use ::cachette::__private::{
                            HoleKey as _, HoleTag as _, HoleValue as _,
                        };
                        ::cachette::__private::render(
                            &["user:", ""],
                            &[
                                (&&::cachette::__private::Hole(&id)).__cachette_hole()
                                    as &dyn ::core::fmt::Display,
                            ],
                        )
                    },
                    tags: ::std::vec![
                        ::core::clone::Clone::clone(& __cachette_fixed_tags[0])
                    ],
                    element: id,
                }
            },
        ),
    );
    ::cachette::__private::cached_batch::<
        _,
        Result<HashMap<u64, User>, DbError>,
        _,
        _,
    >(
            ::cachette::__private::Site {
                cache: __cachette_cache,
                policy: &__CACHETTE_POLICY,
                function: __cachette_fn,
                through_mut: __cachette_through_mut,
            },
            __cachette_mode,
            __cachette_keep,
            __cachette_items,
            ::cachette::__private::Hooks {
                tags_from: ::core::option::Option::None,
                ttl_of: ::core::option::Option::None,
                unless: ::core::option::Option::None,
            },
            move |__cachette_missing: ::std::vec::Vec<u64>| async move {
                #[allow(unused_variables)]
                let ids = &__cachette_missing[..];
                let __cachette_ret: Result<HashMap<u64, User>, DbError> = {
                    db::load_users(org, ids).await
                };
                __cachette_ret
            },
        )
        .await
}
#[doc(hidden)]
#[allow(non_snake_case, dead_code)]
fn __cachette_entries_of_get_users() -> ::cachette::__private::Function {
    ::cachette::__private::function_named(
        ::core::concat!(::core::module_path!(), "::get_users"),
        ::core::concat!(::core::module_path!(), "::get_users#74c25daaf3f68ee4"),
    )
}
/// Runs `get_users`'s body without the cache: nothing is read, nothing is stored.
#[allow(clippy::all, clippy::pedantic, unused_mut)]
async fn get_users_uncached(
    org: &str,
    ids: &[u64],
) -> Result<HashMap<u64, User>, DbError> {
    ::cachette::__private::companion(
            ::cachette::__private::Companion::Uncached,
            get_users(org, ids),
        )
        .await
}
/// Runs `get_users`'s body and stores its result, as a miss does (the versions are read before the body, so an invalidation made meanwhile is never overwritten); returns the result.
#[allow(clippy::all, clippy::pedantic, unused_mut)]
async fn get_users_refresh(
    org: &str,
    ids: &[u64],
) -> Result<HashMap<u64, User>, DbError> {
    ::cachette::__private::companion(
            ::cachette::__private::Companion::Refresh,
            get_users(org, ids),
        )
        .await
}
/// The entries a call of `get_users` with these arguments reads, one per element (each once, in order): their cache and keys, rendered exactly as `get_users` renders them. The body does not run.
#[allow(clippy::all, clippy::pedantic, unused_mut)]
fn get_users_key(
    org: &str,
    ids: &[u64],
) -> ::std::vec::Vec<::cachette::__private::EntryKey> {
    ::cachette::__private::keys_of(get_users(org, ids))
}
#[doc(hidden)]
#[allow(clippy::all, clippy::pedantic, unused_mut, non_snake_case)]
fn get_users_key_by_3ids_3org(
    ids: &[u64],
    org: &str,
) -> ::std::vec::Vec<::cachette::__private::EntryKey> {
    ::cachette::__private::keys_of(get_users(org, ids))
}
#[doc(hidden)]
#[allow(clippy::all, clippy::pedantic, unused_mut, non_snake_case)]
fn get_users_key_in_3org_3ids(
    org: &str,
    ids: &[u64],
) -> ::std::vec::Vec<::cachette::__private::EntryKey> {
    ::cachette::__private::keys_of(get_users(org, ids))
}
/// One element of `get_users`, whose entries it reads and fills: the calls made within one scheduling tick of each other (with the same other arguments) are gathered into one call of `get_users`. `None`: not found.
async fn get_user(org: &str, id: u64) -> Result<::core::option::Option<User>, DbError> {
    const __CACHETTE_POLICY: ::cachette::__private::Policy = ::cachette::__private::Policy::new(
            ::cachette::__private::Strategy::Aside,
            ::cachette::__private::ms(300000u64),
        )
        .template("user:<id>");
    #[allow(unused_imports)]
    use ::cachette::__private::{
        BustWhen as _, KeepClone as _, KeepDecoding as _, SelectOption as _,
        SelectPlain as _, SelectResult as _, SelectResultOption as _,
    };
    let __cachette_fn = __cachette_entries_of_get_users();
    let __cachette_cache: &::cachette::__private::Cache = &::cachette::__private::default_cache(
        &__cachette_fn,
    );
    let __cachette_group: ::std::string::String = {
        #[allow(unused_imports)]
        use ::cachette::__private::{HoleKey as _, HoleTag as _, HoleValue as _};
        ::cachette::__private::render(
            &["", ""],
            &[
                (&&::cachette::__private::Hole(&org)).__cachette_hole()
                    as &dyn ::core::fmt::Display,
            ],
        )
    };
    ::cachette::__private::load_one::<
        Result<HashMap<u64, User>, DbError>,
        _,
        _,
        _,
    >(
            __cachette_cache,
            &__cachette_fn,
            __cachette_group,
            id,
            &__CACHETTE_POLICY,
            true,
            move |__cachette_missing: ::std::vec::Vec<u64>| async move {
                get_users(org, &__cachette_missing[..]).await
            },
        )
        .await
}
/// Runs `get_user`'s body without the cache: nothing is read, nothing is stored.
#[allow(clippy::all, clippy::pedantic, unused_mut)]
async fn get_user_uncached(
    org: &str,
    id: u64,
) -> Result<::core::option::Option<User>, DbError> {
    ::cachette::__private::companion(
            ::cachette::__private::Companion::Uncached,
            get_user(org, id),
        )
        .await
}
/// Runs `get_user`'s body and stores its result, as a miss does (the versions are read before the body, so an invalidation made meanwhile is never overwritten); returns the result.
#[allow(clippy::all, clippy::pedantic, unused_mut)]
async fn get_user_refresh(
    org: &str,
    id: u64,
) -> Result<::core::option::Option<User>, DbError> {
    ::cachette::__private::companion(
            ::cachette::__private::Companion::Refresh,
            get_user(org, id),
        )
        .await
}
/// The entry a call of `get_user` with these arguments reads: its cache and its key, rendered exactly as `get_user` renders it. The body does not run.
#[allow(clippy::all, clippy::pedantic, unused_mut)]
fn get_user_key(org: &str, id: u64) -> ::cachette::__private::EntryKey {
    ::cachette::__private::key_of(get_user(org, id))
}
#[doc(hidden)]
#[allow(clippy::all, clippy::pedantic, unused_mut, non_snake_case)]
fn get_user_key_by_2id_3org(id: u64, org: &str) -> ::cachette::__private::EntryKey {
    ::cachette::__private::key_of(get_user(org, id))
}
#[doc(hidden)]
#[allow(clippy::all, clippy::pedantic, unused_mut, non_snake_case)]
fn get_user_key_in_3org_2id(org: &str, id: u64) -> ::cachette::__private::EntryKey {
    ::cachette::__private::key_of(get_user(org, id))
}
