//! `synckairos-operator`: watches SyncKairosCluster objects and reconciles them.
//! Configuration comes from flags or the environment the Helm chart sets
//! (WATCH_NAMESPACE, POD_NAMESPACE, POD_NAME, LEADER_ELECTION, LEADER_ELECTION_LEASE_NAME,
//! METRICS_PORT, RUST_LOG, LOG_FORMAT).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use synckairos_operator::apiserver;
use synckairos_operator::crd::SyncKairosCluster;
use synckairos_operator::http::{Health, router};
use synckairos_operator::labels;
use synckairos_operator::leader::{self, LeaseConfig};
use synckairos_operator::metrics::Metrics;
use synckairos_operator::reconcile::{Context, LiveProbes, error_policy, reconcile};
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(
    name = "synckairos-operator",
    version = synckairos_operator::BUILD_VERSION,
    about = "Kubernetes operator for SyncKairos"
)]
struct Cli {
    /// Namespace to watch; empty watches every namespace.
    #[arg(long, env = "WATCH_NAMESPACE", default_value = "")]
    watch_namespace: String,
    /// Namespace of the operator pod (where the Lease lives).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pod_namespace: String,
    /// Name of the operator pod (the Lease holder identity).
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// Elect one active replica through a Lease.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the Lease.
    #[arg(
        long,
        env = "LEADER_ELECTION_LEASE_NAME",
        default_value = "synckairos-operator"
    )]
    lease_name: String,
    /// Port of /metrics, /healthz and /readyz.
    #[arg(long, env = "METRICS_PORT", default_value_t = 8080)]
    metrics_port: u16,
    /// Log format: json or text.
    #[arg(long, env = "LOG_FORMAT", default_value = "json", value_parser = ["json", "text"])]
    log_format: String,
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "text" {
        b.init();
    } else {
        b.json().flatten_event(true).init();
    }
}

fn scoped<K>(client: &Client, ns: &str) -> Api<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    if ns.is_empty() {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), ns)
    }
}

async fn run_controller(client: Client, cli: &Cli, metrics: Metrics, identity: String) {
    let ns = cli.watch_namespace.as_str();
    let mut ctx = Context::new(
        client.clone(),
        Arc::new(LiveProbes::new()),
        metrics,
        Some(identity),
    );
    // one log line now, and a condition on every cluster it reconciles
    ctx.api_server = apiserver::check(&client).await;
    let ctx = Arc::new(ctx);
    let wc = watcher::Config::default();
    let managed = labels::managed();
    let owned = watcher::Config::default().labels(&managed);
    Controller::new(scoped::<SyncKairosCluster>(&client, ns), wc)
        .owns(scoped::<StatefulSet>(&client, ns), owned.clone())
        .owns(scoped::<Deployment>(&client, ns), owned.clone())
        .owns(scoped::<Job>(&client, ns), owned.clone())
        .owns(scoped::<Service>(&client, ns), owned)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            match r {
                Ok((obj, _)) => tracing::debug!(cluster = %obj.name, "reconciled"),
                Err(e) => tracing::warn!(error = %e, "reconcile error"),
            }
        })
        .await;
}

async fn serve_http(port: u16, health: Health) -> Result<(), std::io::Error> {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    tracing::info!(port, "metrics and health listener up");
    axum::serve(listener, router(health)).await
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(&cli.log_format);
    let metrics = match Metrics::new() {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "metrics registry");
            return ExitCode::FAILURE;
        }
    };
    let client = match Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no Kubernetes client configuration");
            return ExitCode::FAILURE;
        }
    };
    let ready = Arc::new(AtomicBool::new(false));
    let health = Health {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let port = cli.metrics_port;
    tokio::spawn(async move {
        if let Err(e) = serve_http(port, health).await {
            tracing::error!(error = %e, "http listener failed");
            std::process::exit(1);
        }
    });
    let identity = cli
        .pod_name
        .clone()
        .unwrap_or_else(|| format!("synckairos-operator-{}", std::process::id()));
    tracing::info!(watch_namespace = %cli.watch_namespace, identity = %identity, leader_election = cli.leader_election, "starting");

    if !cli.leader_election {
        ready.store(true, Ordering::SeqCst);
        metrics.leader.set(1);
        tracing::info!("leader election off: starting the controller");
        run_controller(client, &cli, metrics, identity).await;
        return ExitCode::SUCCESS;
    }

    // ready once the API server answered; standbys are ready too
    let probe = client.clone();
    let ready_flag = ready.clone();
    tokio::spawn(async move {
        loop {
            match probe.apiserver_version().await {
                Ok(v) => {
                    tracing::info!(version = %v.git_version, "API server reachable");
                    ready_flag.store(true, Ordering::SeqCst);
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "API server not reachable yet"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    });
    let leases: Api<Lease> = Api::namespaced(client.clone(), &cli.pod_namespace);
    let cfg = LeaseConfig::new(cli.lease_name.clone(), identity.clone());
    let (tx, mut rx) = watch::channel(false);
    tokio::spawn(leader::run(leases.clone(), cfg.clone(), tx));
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return ExitCode::FAILURE;
        }
    }
    metrics.leader.set(1);
    tracing::info!("leading: starting the controller");
    let lost = async {
        while *rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = run_controller(client, &cli, metrics.clone(), identity) => {
            // shut down by a signal: hand the Lease over at once
            if let Err(e) = leader::release(&leases, &cfg).await {
                tracing::warn!(error = %e, "could not release the Lease");
            }
            ExitCode::SUCCESS
        }
        () = lost => {
            // another replica may already reconcile: stop at once, restart as a standby
            tracing::error!("lost the Lease: exiting");
            ExitCode::FAILURE
        }
    }
}
