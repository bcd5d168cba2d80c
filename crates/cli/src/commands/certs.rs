//! `microcosm certs`: a development CA and the certificates that turn on TLS and
//! mutual TLS for gRPC (`GRPC_TLS_CERT`, `GRPC_TLS_KEY`, `GRPC_TLS_CA` on each
//! service; `--tls-ca`, `--tls-cert`, `--tls-key` on the CLI).
//!
//! Written to `--dir`: `ca.pem` (and `ca-key.pem`, to sign more), and for each of
//! order, inventory, billing and the CLI a certificate and key (`order.pem`,
//! `order-key.pem`, ..., `cli.pem`, `cli-key.pem`). Every certificate is good for
//! both ends of a connection (server and client authentication) and names the
//! hosts a service is reached by here, in compose and in Kubernetes: localhost,
//! 127.0.0.1, ::1, `<service>`, `<service>.microcosm`, `<service>.microcosm.svc`
//! and `<service>.microcosm.svc.cluster.local`. Keys are written readable by their
//! owner only. For development: a real deployment's CA lives in a secret store.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Who gets a certificate.
const SUBJECTS: [&str; 4] = ["order", "inventory", "billing", "cli"];

/// Arguments of `microcosm certs`.
#[derive(Debug, Args)]
pub(crate) struct CertsArgs {
    /// Where to write the PEM files.
    #[arg(long, value_name = "DIR", default_value = ".microcosm/certs")]
    dir: PathBuf,
    /// Replace files already there (a new CA: every certificate is replaced).
    #[arg(long)]
    force: bool,
}

/// Writes the CA and the certificates; refuses to overwrite without `--force`.
pub(crate) fn run(args: &CertsArgs) -> anyhow::Result<ExitCode> {
    let ca_path = args.dir.join("ca.pem");
    if ca_path.exists() && !args.force {
        bail!(
            "{} exists; pass --force to replace the CA and every certificate",
            ca_path.display()
        );
    }
    fs::create_dir_all(&args.dir)
        .with_context(|| format!("could not create {}", args.dir.display()))?;

    let ca_key = KeyPair::generate().context("could not generate the CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Microcosm development CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    write_file(&ca_path, &ca_cert.pem(), false)?;
    write_file(&args.dir.join("ca-key.pem"), &ca_key.serialize_pem(), true)?;
    let issuer = Issuer::new(ca_params, ca_key);

    for subject in SUBJECTS {
        let key =
            KeyPair::generate().with_context(|| format!("could not generate {subject}'s key"))?;
        let mut params = CertificateParams::new(host_names(subject))?;
        params.distinguished_name.push(DnType::CommonName, subject);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &issuer)?;
        write_file(&args.dir.join(format!("{subject}.pem")), &cert.pem(), false)?;
        write_file(
            &args.dir.join(format!("{subject}-key.pem")),
            &key.serialize_pem(),
            true,
        )?;
    }
    let dir = args.dir.display();
    println!(
        "wrote a development CA and certificates for {} to {dir}",
        SUBJECTS.join(", ")
    );
    println!();
    println!("mutual TLS for the order service, for example:");
    println!(
        "  GRPC_TLS_CERT={dir}/order.pem GRPC_TLS_KEY={dir}/order-key.pem GRPC_TLS_CA={dir}/ca.pem"
    );
    println!("and for the CLI (with https:// service URLs):");
    println!(
        "  microcosm --tls-ca {dir}/ca.pem --tls-cert {dir}/cli.pem --tls-key {dir}/cli-key.pem \\"
    );
    println!("    --order-url https://127.0.0.1:50051 order list");
    Ok(ExitCode::SUCCESS)
}

/// The names `subject` is reached by: locally, in compose, and in Kubernetes.
fn host_names(subject: &str) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if subject != "cli" {
        names.extend([
            subject.to_owned(),
            format!("{subject}.microcosm"),
            format!("{subject}.microcosm.svc"),
            format!("{subject}.microcosm.svc.cluster.local"),
        ]);
    }
    names
}

/// Writes `contents` to `path`; a private key is readable by its owner only.
fn write_file(path: &Path, contents: &str, private: bool) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("could not write {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("could not write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_named_by_every_host_they_are_reached_by_the_cli_only_locally() {
        let order = host_names("order");
        for name in [
            "localhost",
            "127.0.0.1",
            "order",
            "order.microcosm.svc.cluster.local",
        ] {
            assert!(order.contains(&name.to_owned()), "{name}");
        }
        assert_eq!(host_names("cli"), vec!["localhost", "127.0.0.1", "::1"]);
    }

    #[test]
    fn writes_a_ca_and_a_certificate_and_private_key_per_subject_and_refuses_to_overwrite() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let args = CertsArgs {
            dir: dir.path().to_path_buf(),
            force: false,
        };
        run(&args).unwrap();
        for file in [
            "ca.pem",
            "order.pem",
            "inventory.pem",
            "billing.pem",
            "cli.pem",
        ] {
            let text = fs::read_to_string(dir.path().join(file)).unwrap();
            assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{file}");
        }
        let key = dir.path().join("order-key.pem");
        assert!(fs::read_to_string(&key).unwrap().contains("PRIVATE KEY"));
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = format!("{:#}", run(&args).unwrap_err());
        assert!(again.contains("--force"), "{again}");
        run(&CertsArgs {
            force: true,
            ..args
        })
        .unwrap();
    }
}
