"""The TLS channel the Python gRPC clients of the tests dial: 127.0.0.1:PORT, trusting
CERTS_DIR/ca.crt for the server name www.example.com (as the original's client), presenting
CERTS_DIR/client.pem."""
import grpc


def secure_channel(port, certs):
    read = lambda name: open(f"{certs}/{name}", "rb").read()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read("ca.crt"),
        private_key=read("client.key"),
        certificate_chain=read("client.pem"),
    )
    options = [("grpc.ssl_target_name_override", "www.example.com")]
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials, options)
