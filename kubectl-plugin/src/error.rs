//! The plugin's one error type: every message says what to do next.

/// Errors of `kubectl instantdb`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be read or has no such context.
    #[error(
        "cannot load the kubeconfig: {0}; check KUBECONFIG, --kubeconfig and --context (kubectl config get-contexts)"
    )]
    Kubeconfig(String),
    /// An object the command needs does not exist.
    #[error("{kind} {name} not found in namespace {namespace}; {hint}")]
    NotFound {
        /// Kind (`InstantDb`, `Secret`...).
        kind: &'static str,
        /// Object name.
        name: String,
        /// Namespace searched.
        namespace: String,
        /// What to do (`list them with kubectl get instantdb -n NS`).
        hint: String,
    },
    /// A Kubernetes API request failed.
    #[error("{what}: {source}{}", hint(source))]
    Kube {
        /// What the plugin was doing.
        what: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// A Secret lacks the key the command reads.
    #[error(
        "Secret {secret} has no key {key:?}; the operator writes it: check `kubectl describe instantdb {instance}` and the operator's logs"
    )]
    SecretKey {
        /// Secret name.
        secret: String,
        /// Missing key.
        key: &'static str,
        /// Instance the Secret belongs to.
        instance: String,
    },
    /// The engine could not be reached through the port-forward.
    #[error(
        "cannot reach the engine of {instance} ({what}): {message}; is the pod running? (kubectl instantdb status {instance})"
    )]
    Unreachable {
        /// Instance.
        instance: String,
        /// What was asked.
        what: &'static str,
        /// Cause.
        message: String,
    },
    /// The engine answered with an error.
    #[error("the engine refused {what} (HTTP {status}): {message}")]
    Engine {
        /// What was asked.
        what: &'static str,
        /// HTTP status.
        status: u16,
        /// The engine's error message.
        message: String,
    },
    /// A backup or restore finished with an error.
    #[error("{kind} {name} failed: {error}; {hint}")]
    OperationFailed {
        /// `InstantDbBackup` or `InstantDbRestore`.
        kind: &'static str,
        /// Object name.
        name: String,
        /// `status.error`.
        error: String,
        /// What to do.
        hint: &'static str,
    },
    /// `--wait` ran out of time; the operation goes on.
    #[error(
        "{kind} {name} is still {phase} after {secs}s; it goes on: follow it with `kubectl get {short} {name} -n {namespace} -w`"
    )]
    Timeout {
        /// Kind.
        kind: &'static str,
        /// Short name for kubectl (`idbb`, `idbr`).
        short: &'static str,
        /// Object name.
        name: String,
        /// Namespace.
        namespace: String,
        /// Last phase seen.
        phase: String,
        /// Seconds waited.
        secs: u64,
    },
    /// The integrity check found problems.
    #[error("the integrity check of {instance} found problems (see above); {advice}")]
    IntegrityFailed {
        /// Instance.
        instance: String,
        /// The engine's advice.
        advice: String,
    },
    /// Bad command-line input.
    #[error("{0}")]
    Usage(String),
    /// The terminal could not be written.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

fn hint(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) if s.code == 403 => {
            "; your kubeconfig user lacks a permission (docs/operator.md, `kubectl instantdb`, lists the ones each command needs)"
        }
        kube::Error::Api(_) => "",
        _ => "; check that the cluster is reachable (kubectl cluster-info)",
    }
}

/// Result of the plugin.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a kube error with what the plugin was doing.
    pub fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let what = what.into();
        move |source| Error::Kube { what, source }
    }
}

/// True for an API answer 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
