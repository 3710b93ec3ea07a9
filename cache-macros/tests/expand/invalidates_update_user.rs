async fn update_user(id: u64, org: &str, patch: Patch) -> Result<User, DbError> {
    let __cachette_cache: &::cachette::__private::Cache = &::cachette::__private::default_cache();
    let __cachette_keys = [
        ::cachette::__private::render(
            &["user:", ""],
            &[&id as &dyn ::core::fmt::Display],
        ),
    ];
    let __cachette_tags = [
        ::cachette::__private::render(
            &["org:", ""],
            &[&org as &dyn ::core::fmt::Display],
        ),
    ];
    let __cachette_bust = ::cachette::__private::invalidation(
        __cachette_cache,
        ::core::concat!(::core::module_path!(), "::", "update_user"),
        &__cachette_keys,
        &__cachette_tags,
    );
    let __cachette_ret: Result<User, DbError> = async {
        let __cachette_ret: Result<User, DbError> = { db::update_user(id, patch).await };
        __cachette_ret
    }
        .await;
    __cachette_bust.finish(::core::result::Result::is_ok(&__cachette_ret)).await;
    __cachette_ret
}
