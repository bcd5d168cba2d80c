//! The inventory service binary: everything lives in the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    microcosm_platform::service::main::<inventory_service::Service>().await
}
