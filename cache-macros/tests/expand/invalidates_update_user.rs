async fn update_user(id: u64, org: &str, patch: Patch) -> Result<User, DbError> {
    #[allow(unused_imports)]
    use ::cachette::__private::{
        BustWhen as _, KeepClone as _, KeepDecoding as _, SelectOption as _,
        SelectPlain as _, SelectResult as _, SelectResultOption as _,
    };
    let __cachette_fn = ::cachette::__private::function(&|| (), "eca6afb26e1d31c4");
    let __cachette_cache: &::cachette::__private::Cache = &::cachette::__private::default_cache(
        &__cachette_fn,
    );
    let __cachette_keys = [
        {
            #[allow(unused_imports)]
            use ::cachette::__private::{HoleKey as _, HoleTag as _, HoleValue as _};
            ::cachette::__private::render(
                &["user:", ""],
                &[
                    (&&::cachette::__private::Hole(&id)).__cachette_hole()
                        as &dyn ::core::fmt::Display,
                ],
            )
        },
    ];
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
    let __cachette_calls: ::std::vec::Vec<::cachette::__private::EntryKey> = {
        #[allow(unused_mut)]
        let mut __cachette_calls = ::std::vec::Vec::with_capacity(0usize);
        __cachette_calls
    };
    #[allow(unused_mut)]
    let mut __cachette_bust = ::cachette::__private::invalidation(
        ::core::option::Option::Some(__cachette_cache),
        &__cachette_fn,
        &__cachette_keys,
        &__cachette_tags,
        &__cachette_calls,
        ::cachette::__private::mut_argument(
            &[("patch", ::cachette::__private::is_mut_ref(&patch))],
        ),
    );
    let __cachette_ret: Result<User, DbError> = async {
        let __cachette_ret: Result<User, DbError> = { db::update_user(id, patch).await };
        __cachette_ret
    }
        .await;
    let __cachette_when = (&&&::cachette::__private::Select::<
        Result<User, DbError>,
    >::new())
        .__cachette_bust();
    let __cachette_ok = __cachette_when.succeeded(&__cachette_ret);
    __cachette_bust.finish(__cachette_ok).await;
    __cachette_ret
}
