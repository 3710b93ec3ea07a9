async fn price(sku: &str, currency: Currency) -> Option<u64> {
    const __CACHETTE_POLICY: ::cachette::__private::Policy = ::cachette::__private::Policy::new(
        ::cachette::__private::Strategy::Aside,
        ::cachette::__private::ms(60000u64),
    );
    #[allow(unused_imports)]
    use ::cachette::__private::{
        BustWhen as _, KeepClone as _, KeepDecoding as _, SelectOption as _,
        SelectPlain as _, SelectResult as _, SelectResultOption as _,
    };
    let __cachette_fn = ::cachette::__private::function(&|| (), "d191a45a5ebbdccb");
    let __cachette_cache: &::cachette::__private::Cache = &::cachette::__private::default_cache(
        &__cachette_fn,
    );
    let __cachette_key: ::std::string::String = {
        fn __cachette_marker() {}
        ::cachette::__private::default_key(
            ::cachette::__private::fn_path(__cachette_marker),
            &[
                ::cachette::__private::an_omitted_key_displays_every_argument(&sku),
                ::cachette::__private::an_omitted_key_displays_every_argument(&currency),
            ],
        )
    };
    let __cachette_mode = (&&&::cachette::__private::Select::<Option<u64>>::new())
        .__cachette_mode();
    let __cachette_keep = (&&::cachette::__private::keep_probe::<
        _,
        Option<u64>,
    >(&__cachette_mode))
        .__cachette_keeper();
    let __cachette_tags = [];
    ::cachette::__private::cached(
            ::cachette::__private::Site {
                cache: __cachette_cache,
                policy: &__CACHETTE_POLICY,
                function: __cachette_fn,
                through_mut: ::cachette::__private::mut_argument(
                    &[("currency", ::cachette::__private::is_mut_ref(&currency))],
                ),
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
                let __cachette_ret: Option<u64> = { lookup(sku, currency).await };
                __cachette_ret
            },
            ::cachette::__private::no_refresh(),
        )
        .await
}
/// Runs `price`'s body without the cache: nothing is read, nothing is stored.
#[allow(clippy::all, clippy::pedantic, unused_mut)]
async fn price_uncached(sku: &str, currency: Currency) -> Option<u64> {
    ::cachette::__private::companion(
            ::cachette::__private::Companion::Uncached,
            price(sku, currency),
        )
        .await
}
/// Runs `price`'s body and stores its result, as a miss does (the versions are read before the body, so an invalidation made meanwhile is never overwritten); returns the result.
#[allow(clippy::all, clippy::pedantic, unused_mut)]
async fn price_refresh(sku: &str, currency: Currency) -> Option<u64> {
    ::cachette::__private::companion(
            ::cachette::__private::Companion::Refresh,
            price(sku, currency),
        )
        .await
}
/// The entry a call of `price` with these arguments reads: its cache and its key, rendered exactly as `price` renders it. The body does not run.
#[allow(clippy::all, clippy::pedantic, unused_mut)]
fn price_key(sku: &str, currency: Currency) -> ::cachette::__private::EntryKey {
    ::cachette::__private::key_of(price(sku, currency))
}
#[doc(hidden)]
#[allow(clippy::all, clippy::pedantic, unused_mut, non_snake_case)]
fn price_key_by_8currency_3sku(
    currency: Currency,
    sku: &str,
) -> ::cachette::__private::EntryKey {
    ::cachette::__private::key_of(price(sku, currency))
}
#[doc(hidden)]
#[allow(clippy::all, clippy::pedantic, unused_mut, non_snake_case)]
fn price_key_in_3sku_8currency(
    sku: &str,
    currency: Currency,
) -> ::cachette::__private::EntryKey {
    ::cachette::__private::key_of(price(sku, currency))
}
