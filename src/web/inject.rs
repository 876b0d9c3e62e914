//! `Inject<M, dyn Trait>`: the actix-web extractor that resolves a component from the shaku module
//! (what the `shaku_actix` crate provided, written here so actix-web's default features, which
//! that crate turns on, stay off: docs/decisions.md, "The cold build").
//!
//! The module is found in the app data as `Arc<M>` (registered with `App::app_data(Arc<M>)`, not
//! `web::Data`); a route whose app has no such module answers 500.

use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::error::ErrorInternalServerError;
use actix_web::{Error, FromRequest, HttpRequest};
use shaku::{HasComponent, Interface, ModuleInterface};

/// A component `I` resolved from the module `M` for one request (an `Arc` clone, no allocation).
pub struct Inject<M: ModuleInterface + HasComponent<I> + ?Sized, I: Interface + ?Sized>(
    Arc<I>,
    PhantomData<M>,
);

impl<M: ModuleInterface + HasComponent<I> + ?Sized, I: Interface + ?Sized> FromRequest
    for Inject<M, I>
{
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match req.app_data::<Arc<M>>() {
            Some(module) => Ok(Inject(module.resolve(), PhantomData)),
            None => Err(ErrorInternalServerError(
                "Failed to retrieve module from state",
            )),
        })
    }
}

impl<M: ModuleInterface + HasComponent<I> + ?Sized, I: Interface + ?Sized> Deref for Inject<M, I> {
    type Target = I;

    fn deref(&self) -> &I {
        &self.0
    }
}
