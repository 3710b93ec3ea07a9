async fn get_user(id: u64, org: &str) -> Result<User, DbError> {
    const __CACHETTE_POLICY: ::cachette::__private::Policy = ::cachette::__private::Policy::new(
            ::cachette::__private::Strategy::Aside,
            ::cachette::__private::ms(300000u64),
        )
        .function(::core::concat!(::core::module_path!(), "::", "get_user"));
    let __cachette_cache: &::cachette::__private::Cache = &::cachette::__private::default_cache();
    let __cachette_key: ::std::string::String = ::cachette::__private::render(
        &["user:", ""],
        &[&id as &dyn ::core::fmt::Display],
    );
    let __cachette_tags = [
        ::cachette::__private::render(
            &["org:", ""],
            &[&org as &dyn ::core::fmt::Display],
        ),
    ];
    ::cachette::__private::cached::<
        ::cachette::__private::ResultMode,
        Result<User, DbError>,
        _,
    >(
            __cachette_cache,
            &__CACHETTE_POLICY,
            &__cachette_key,
            &__cachette_tags,
            async {
                let __cachette_ret: Result<User, DbError> = { db::load_user(id).await };
                __cachette_ret
            },
        )
        .await
}
