//! The gRPC code generated from `proto/` at build time (see `build.rs`): the original's
//! `hello.HelloService` and `user.UserService`, their messages, servers and clients, the
//! benchmark-only `bench.Burn` (served with `server.debug_routes`), and the services
//! `go_example generate resource --grpc` adds.

/// The module of a proto package's generated code (`proto/<name>/<name>.proto`, package
/// `<name>`).
macro_rules! package {
    ($name:ident) => {
        #[doc = concat!("`proto/", stringify!($name), "/", stringify!($name), ".proto`.")]
        #[allow(missing_docs, clippy::all, clippy::pedantic)]
        pub mod $name {
            include!(concat!(env!("OUT_DIR"), "/", stringify!($name), ".rs"));
        }
    };
}

package!(hello);
package!(user);
package!(bench);
// generate:protos (`go_example generate resource --grpc` adds its packages above this line)

/// The encoded `FileDescriptorSet` of the API's protos (`build.rs`'s `PROTOS`), for the reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

/// The encoded `FileDescriptorSet` of `proto/bench`, registered with reflection only where
/// `bench.Burn` is served.
pub const BENCH_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/bench_descriptor.bin"));

/// The metadata key carrying the unified error code of a failed call (`10000`, `20001`, ...):
/// part of the protocol, set by the server (`web::envelope::status`) and read by the client
/// (`repository::rpc`).
pub const ERROR_CODE_KEY: &str = "x-error-code";

/// The metadata key of a traced call's request id: the HTTP app forwards the id of the request
/// it serves, and the gRPC app, believing it from the service credentials only, serves the call
/// as that request and echoes the id in its answer (`middleware::grpc_trace`).
pub const REQUEST_ID_KEY: &str = "x-request-id";

/// The metadata key in which the HTTP app forwards the address of the end user a call is made
/// for (`GET /grpc/hello`); the gRPC app's rate limits believe it only from a caller with the
/// shared service credentials (`middleware::grpc_rate_limit`).
pub const FORWARDED_CLIENT_KEY: &str = "x-goex-client-addr";
