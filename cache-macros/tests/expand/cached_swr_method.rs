impl Repo {
    pub async fn catalog(&self, shop: &str) -> Result<Vec<Product>, DbError> {
        const __CACHETTE_POLICY: ::cachette::__private::Policy = ::cachette::__private::Policy::new(
                ::cachette::__private::Strategy::Swr,
                ::cachette::__private::ms(300000u64),
            )
            .template("catalog:<shop>")
            .stale_ttl(::cachette::__private::ms(3600000u64));
        #[allow(unused_imports)]
        use ::cachette::__private::{
            BustWhen as _, KeepClone as _, KeepDecoding as _, SelectOption as _,
            SelectPlain as _, SelectResult as _, SelectResultOption as _,
        };
        let __cachette_fn = ::cachette::__private::function(&|| (), "6642cf33119fb441");
        let __cachette_cache: &::cachette::__private::Cache = &(self.cache);
        let __cachette_key: ::std::string::String = {
            #[allow(unused_imports)]
            use ::cachette::__private::{HoleKey as _, HoleTag as _, HoleValue as _};
            ::cachette::__private::render(
                &["catalog:", ""],
                &[
                    (&&::cachette::__private::Hole(&shop)).__cachette_hole()
                        as &dyn ::core::fmt::Display,
                ],
            )
        };
        let __cachette_mode = (&&&::cachette::__private::Select::<
            Result<Vec<Product>, DbError>,
        >::new())
            .__cachette_mode();
        ::cachette::__private::serves_stale_applies(&__cachette_mode);
        let __cachette_keep = (&&::cachette::__private::keep_probe::<
            _,
            Result<Vec<Product>, DbError>,
        >(&__cachette_mode))
            .__cachette_keeper();
        let __cachette_tags = [];
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
                    let __cachette_ret: Result<Vec<Product>, DbError> = {
                        self.db.products(shop).await
                    };
                    __cachette_ret
                },
                ::core::option::Option::Some(|| Self::__cachette_refresh_catalog(
                    ::cachette::__private::refresh_clone(self),
                    ::std::borrow::ToOwned::to_owned(shop),
                )),
            )
            .await
    }
    #[doc(hidden)]
    #[allow(non_snake_case, dead_code)]
    fn catalog__in_a_trait_impl_needs_cached_impl() {}
    #[doc(hidden)]
    #[allow(clippy::all, non_snake_case)]
    fn __cachette_refresh_catalog(
        __cachette_self: Self,
        shop: <str as ::std::borrow::ToOwned>::Owned,
    ) -> ::core::pin::Pin<
        ::std::boxed::Box<dyn ::core::future::Future<Output = ()> + ::core::marker::Send>,
    > {
        ::std::boxed::Box::pin(async move {
            let _ = Self::catalog(&__cachette_self, &shop).await;
        })
    }
    /// Runs `catalog`'s body without the cache: nothing is read, nothing is stored.
    #[allow(clippy::all, clippy::pedantic, unused_mut)]
    pub async fn catalog_uncached(&self, shop: &str) -> Result<Vec<Product>, DbError> {
        ::cachette::__private::companion(
                ::cachette::__private::Companion::Uncached,
                Self::catalog(self, shop),
            )
            .await
    }
    /// Runs `catalog`'s body and stores its result, as a miss does (the versions are read before the body, so an invalidation made meanwhile is never overwritten); returns the result.
    #[allow(clippy::all, clippy::pedantic, unused_mut)]
    pub async fn catalog_refresh(&self, shop: &str) -> Result<Vec<Product>, DbError> {
        ::cachette::__private::companion(
                ::cachette::__private::Companion::Refresh,
                Self::catalog(self, shop),
            )
            .await
    }
    /// The entry a call of `catalog` with these arguments reads: its cache and its key, rendered exactly as `catalog` renders it. The body does not run.
    #[allow(clippy::all, clippy::pedantic, unused_mut)]
    pub fn catalog_key(&self, shop: &str) -> ::cachette::__private::EntryKey {
        ::cachette::__private::key_of(Self::catalog(self, shop))
    }
    #[doc(hidden)]
    #[allow(clippy::all, clippy::pedantic, unused_mut, non_snake_case)]
    pub fn catalog_key_by_4shop(&self, shop: &str) -> ::cachette::__private::EntryKey {
        ::cachette::__private::key_of(Self::catalog(self, shop))
    }
    #[doc(hidden)]
    #[allow(clippy::all, clippy::pedantic, unused_mut, non_snake_case)]
    pub fn catalog_key_in_4shop(&self, shop: &str) -> ::cachette::__private::EntryKey {
        ::cachette::__private::key_of(Self::catalog(self, shop))
    }
}
