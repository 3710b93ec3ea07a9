async fn get_user(id: u64, org: &str) -> Result<User, DbError> {
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
    let __cachette_fn = ::cachette::__private::function(&|| (), "8034ab26e90bac25");
    let __cachette_cache: &::cachette::__private::Cache = &::cachette::__private::default_cache(
        &__cachette_fn,
    );
    let __cachette_key: ::std::string::String = {
        #[allow(unused_imports)]
        use ::cachette::__private::{HoleKey as _, HoleTag as _, HoleValue as _};
        ::cachette::__private::render(
            &["user:", ""],
            &[
                (&&::cachette::__private::Hole(&id)).__cachette_hole()
                    as &dyn ::core::fmt::Display,
            ],
        )
    };
    let __cachette_mode = (&&&::cachette::__private::Select::<
        Result<User, DbError>,
    >::new())
        .__cachette_mode();
    let __cachette_keep = (&&::cachette::__private::keep_probe::<
        _,
        Result<User, DbError>,
    >(&__cachette_mode))
        .__cachette_keeper();
    let __cachette_tags = [
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
    ::cachette::__private::cached(
            ::cachette::__private::Site {
                cache: __cachette_cache,
                policy: &__CACHETTE_POLICY,
                function: __cachette_fn,
                through_mut: ::core::option::Option::None,
            },
            __cachette_mode,
            __cachette_keep,
            &__cachette_key,
            &__cachette_tags,
            ::cachette::__private::Hooks {
                tags_from: ::core::option::Option::None,
                ttl_of: ::core::option::Option::None,
                unless: ::core::option::Option::None,
            },
            async {
                let __cachette_ret: Result<User, DbError> = { db::load_user(id).await };
                __cachette_ret
            },
            ::cachette::__private::no_refresh(),
        )
        .await
}
/// Runs `get_user`'s body without the cache: nothing is read, nothing is stored.
#[allow(clippy::all, clippy::pedantic, unused_mut)]
async fn get_user_uncached(id: u64, org: &str) -> Result<User, DbError> {
    ::cachette::__private::companion(
            ::cachette::__private::Companion::Uncached,
            get_user(id, org),
        )
        .await
}
/// Runs `get_user`'s body and stores its result, as a miss does (the versions are read before the body, so an invalidation made meanwhile is never overwritten); returns the result.
#[allow(clippy::all, clippy::pedantic, unused_mut)]
async fn get_user_refresh(id: u64, org: &str) -> Result<User, DbError> {
    ::cachette::__private::companion(
            ::cachette::__private::Companion::Refresh,
            get_user(id, org),
        )
        .await
}
/// The entry a call of `get_user` with these arguments reads: its cache and its key, rendered exactly as `get_user` renders it. The body does not run.
#[allow(clippy::all, clippy::pedantic, unused_mut)]
fn get_user_key(id: u64, org: &str) -> ::cachette::__private::EntryKey {
    ::cachette::__private::key_of(get_user(id, org))
}
#[doc(hidden)]
#[allow(clippy::all, clippy::pedantic, unused_mut, non_snake_case)]
fn get_user_key_by_2id_3org(id: u64, org: &str) -> ::cachette::__private::EntryKey {
    ::cachette::__private::key_of(get_user(id, org))
}
#[doc(hidden)]
#[allow(clippy::all, clippy::pedantic, unused_mut, non_snake_case)]
fn get_user_key_in_2id_3org(id: u64, org: &str) -> ::cachette::__private::EntryKey {
    ::cachette::__private::key_of(get_user(id, org))
}
