//! The answer for requests no route takes: 404 (code 10005) for an unknown path, 405 (code 10006)
//! for a known path with another method.

use actix_web::HttpRequest;

use crate::service::error::ServiceError;

/// The app's default service. A request that matched a resource's pattern but none of its
/// routes reaches here with a match pattern set: that is a wrong method, not a wrong path.
pub async fn no_route(req: HttpRequest) -> Result<actix_web::HttpResponse, ServiceError> {
    if req.match_pattern().is_some() {
        Err(ServiceError::MethodNotAllowed)
    } else {
        Err(ServiceError::RouteNotFound)
    }
}
