//! `kubectl-instantdb`: copy it onto PATH and kubectl runs it as `kubectl instantdb`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kubectl_instantdb::cli::Cli;
use kubectl_instantdb::{Ctx, Error, Result, run};

/// The client and namespace kubectl would use: `--kubeconfig` (else $KUBECONFIG, else
/// ~/.kube/config, else the in-cluster service account), `--context`, and `-n` (else the
/// context's namespace).
async fn connect(cli: &Cli) -> Result<(kube::Client, String)> {
    let options = KubeConfigOptions {
        context: cli.context.clone(),
        ..Default::default()
    };
    let config = match &cli.kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| Error::Kubeconfig(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| Error::Kubeconfig(e.to_string()))?
        }
        None if cli.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| Error::Kubeconfig(e.to_string()))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| Error::Kubeconfig(e.to_string()))?,
    };
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    Ok((client, namespace))
}

#[tokio::main]
async fn main() -> ExitCode {
    instant_db_operator::tls::install_default_crypto_provider();
    let cli = Cli::parse();
    let result = async {
        let (client, namespace) = connect(&cli).await?;
        let mut stdout = std::io::stdout();
        let mut ctx = Ctx {
            client,
            namespace,
            out: &mut stdout,
            poll: Duration::from_secs(2),
        };
        run(cli.command, &mut ctx).await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
