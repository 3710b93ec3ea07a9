async fn price(sku: &str, currency: Currency) -> Option<u64> {
    const __CACHETTE_POLICY: ::cachette::__private::Policy = ::cachette::__private::Policy::new(
            ::cachette::__private::Strategy::Aside,
            ::cachette::__private::ms(60000u64),
        )
        .function(::core::concat!(::core::module_path!(), "::", "price"));
    let __cachette_cache: &::cachette::__private::Cache = &::cachette::__private::default_cache();
    let __cachette_key: ::std::string::String = {
        fn __cachette_fn() {}
        ::cachette::__private::default_key(
            ::cachette::__private::fn_path(__cachette_fn),
            &[&sku as &dyn ::core::fmt::Display, &currency as &dyn ::core::fmt::Display],
        )
    };
    let __cachette_tags = [];
    ::cachette::__private::cached::<
        ::cachette::__private::OptionMode,
        Option<u64>,
        _,
    >(
            __cachette_cache,
            &__CACHETTE_POLICY,
            &__cachette_key,
            &__cachette_tags,
            async {
                let __cachette_ret: Option<u64> = { lookup(sku, currency).await };
                __cachette_ret
            },
        )
        .await
}
