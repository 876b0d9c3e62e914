//! A bare actix-web server answering `GET /hello` with the same JSON shape as go_example's
//! `/hello`, and nothing else: the ceiling the full stack is measured against.

use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    HttpServer::new(|| {
        App::new().route(
            "/hello",
            web::get().to(|| async {
                HttpResponse::Ok()
                    .json(serde_json::json!({"hello": "world，rust", "env": "debug", "user": ""}))
            }),
        )
    })
    .bind(addr)?
    .run()
    .await
}
