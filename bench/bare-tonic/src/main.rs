//! `bench-bare-tonic ADDR CERT KEY`: the gRPC baseline of `make bench`. tonic serving the app's
//! own `hello.HelloService` over the same TLS, with no auth layer, health or reflection: what
//! the gRPC app's stack is measured against.

use go_example::proto::hello::hello_service_server::{HelloService, HelloServiceServer};
use go_example::proto::hello::{HelloRequest, HelloResponse};
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

struct Hello;

#[tonic::async_trait]
impl HelloService for Hello {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloResponse>, Status> {
        let id = request.into_inner().id;
        let name = if id == 1 { "hello world" } else { "hello gRPC" };
        Ok(Response::new(HelloResponse {
            id,
            name: name.to_owned(),
        }))
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, cert, key] = args.as_slice() else {
        eprintln!("usage: bench-bare-tonic ADDR CERT KEY");
        std::process::exit(2);
    };
    // A subscriber that records nothing: without one, every span of h2 and hyper falls back to
    // the `log` crate (tracing's `log` feature is on in this workspace through actix-codec), a
    // cost of ~10,500 instructions per call that a real server, with a subscriber, does not pay
    // (go_example installs its own; issue 23).
    tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default())?;
    let identity = Identity::from_pem(std::fs::read(cert)?, std::fs::read(key)?);
    Server::builder()
        .tls_config(ServerTlsConfig::new().identity(identity))?
        .add_service(HelloServiceServer::new(Hello))
        .serve(addr.parse()?)
        .await?;
    Ok(())
}
