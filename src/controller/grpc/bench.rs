//! `bench.Burn` (benchmark only, served with `server.debug_routes`): `Burn`, the gRPC twin of
//! `GET /debug/burn` for the overload benchmark (`bench/run.py --suite overload`).

use std::sync::Arc;

use shaku::{Component, Interface};
use tonic::{Request, Response, Status};

use crate::proto::bench::burn_server::Burn as BurnRpc;
use crate::proto::bench::{BurnRequest, BurnResponse};
use crate::service::burn::burn;
use crate::web::envelope::status;

/// The `bench.Burn` controller: the trait tonic generates from `proto/bench/bench.proto`, made a
/// shaku interface.
pub trait BurnRpcController: BurnRpc + Interface {}

/// `Burn`: the same work as `GET /debug/burn`, with the same bounds.
#[derive(Component)]
#[shaku(interface = BurnRpcController)]
pub struct BurnRpcControllerImpl;

#[tonic::async_trait]
impl BurnRpc for BurnRpcControllerImpl {
    async fn burn(&self, request: Request<BurnRequest>) -> Result<Response<BurnResponse>, Status> {
        let burned_ms = burn(request.into_inner().ms)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(BurnResponse { burned_ms }))
    }
}

impl BurnRpcController for BurnRpcControllerImpl {}

/// The component as the module hands it out: tonic's generated server takes a sized service,
/// so the resolved `Arc<dyn BurnRpcController>` is one.
#[tonic::async_trait]
impl BurnRpc for Arc<dyn BurnRpcController> {
    async fn burn(&self, request: Request<BurnRequest>) -> Result<Response<BurnResponse>, Status> {
        (**self).burn(request).await
    }
}
