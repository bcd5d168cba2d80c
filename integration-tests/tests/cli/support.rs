//! Running the `microcosm` binary against a stack and reading what it printed.

use std::process::Stdio;
use std::time::Duration;

use microcosm_testkit::{ServiceKind, Stack};
use serde_json::Value;
use tokio::process::Command;

/// How long one CLI command may take: `order place --wait` waits up to 10 s.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The `microcosm` binary, pointed at three service URLs by flag (the
/// `MICROCOSM_*_URL` variables of the machine running the tests are removed).
pub(crate) struct Microcosm {
    order_url: String,
    inventory_url: String,
    billing_url: String,
}

impl Microcosm {
    /// The CLI talking to `stack`'s services.
    pub(crate) fn for_stack(stack: &Stack) -> Self {
        Self {
            order_url: stack.order.endpoint(),
            inventory_url: stack.inventory.endpoint(),
            billing_url: stack.billing.endpoint(),
        }
    }

    /// The CLI pointed at a port where nothing listens, for every service.
    pub(crate) fn for_nothing_listening() -> Self {
        // Port 1 (tcpmux) is privileged and unused: connecting is refused at once.
        let nowhere = "http://127.0.0.1:1".to_owned();
        Self {
            order_url: nowhere.clone(),
            inventory_url: nowhere.clone(),
            billing_url: nowhere,
        }
    }

    /// Runs `microcosm <args>` to completion and captures what it printed.
    pub(crate) async fn run(&self, args: &[&str]) -> Run {
        let binary = microcosm_testkit::service_binary(ServiceKind::Order)
            .expect("the service binaries are built (cargo build --workspace --bins)")
            .with_file_name("microcosm");
        let output = Command::new(&binary)
            .args(["--order-url", &self.order_url])
            .args(["--inventory-url", &self.inventory_url])
            .args(["--billing-url", &self.billing_url])
            .args(args)
            .env_remove("MICROCOSM_ORDER_URL")
            .env_remove("MICROCOSM_INVENTORY_URL")
            .env_remove("MICROCOSM_BILLING_URL")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(COMMAND_TIMEOUT, output)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "`microcosm {}` still running after {COMMAND_TIMEOUT:?}",
                    args.join(" ")
                )
            })
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", binary.display()));
        Run {
            command: format!("microcosm {}", args.join(" ")),
            exit_code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs a command that must succeed and returns its stdout.
    pub(crate) async fn succeed(&self, args: &[&str]) -> String {
        self.run(args).await.expect_exit(0).stdout
    }

    /// Runs a `--json` command that must succeed and returns its document.
    pub(crate) async fn json(&self, args: &[&str]) -> Value {
        let stdout = self.succeed(args).await;
        serde_json::from_str(&stdout).unwrap_or_else(|error| {
            panic!("`{}` printed no JSON ({error}):\n{stdout}", args.join(" "))
        })
    }
}

/// What one run of the CLI printed, and how it exited.
#[derive(Debug)]
pub(crate) struct Run {
    command: String,
    /// The exit code (`None` if a signal ended the process).
    pub(crate) exit_code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Asserts the exit code, showing everything printed when it differs.
    pub(crate) fn expect_exit(self, expected: i32) -> Self {
        assert_eq!(
            self.exit_code,
            Some(expected),
            "`{}` exited {:?}, expected {expected}\nstdout:\n{}\nstderr:\n{}",
            self.command,
            self.exit_code,
            self.stdout,
            self.stderr
        );
        self
    }
}
