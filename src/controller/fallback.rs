//! The answer for requests no route takes: 404 (code 10005) for an unknown path, 405 (code 10014)
//! with the path's methods in `Allow` for a known path with another method.

use std::sync::Arc;

use actix_web::HttpRequest;

use crate::service::error::ServiceError;
use crate::web::routes::RouteTable;

/// The app's default service. A request that matched a resource's pattern but none of its
/// routes reaches here with a match pattern set: that is a wrong method, not a wrong path.
pub async fn no_route(req: HttpRequest) -> Result<actix_web::HttpResponse, ServiceError> {
    let Some(pattern) = req.match_pattern() else {
        return Err(ServiceError::RouteNotFound);
    };
    let allow = req
        .app_data::<Arc<RouteTable>>()
        .map(|table| {
            table
                .methods(&pattern)
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    Err(ServiceError::MethodNotAllowed { allow })
}
