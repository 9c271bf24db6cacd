//! The operator's error type.

/// Every error the operator can meet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// The object's spec cannot be turned into resources; the user has to change it.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// An object the operator would create already exists and is not owned by the InstantDb.
    #[error(
        "{kind} {name} already exists and is not owned by this InstantDb; delete it or rename the InstantDb"
    )]
    NameConflict {
        /// Kind of the foreign object.
        kind: String,
        /// Its name.
        name: String,
    },
    /// The API server refused an applied object as invalid (HTTP 422), e.g. resource requests
    /// above their limits, which the CRD schema cannot check.
    /// Applying or deleting a child object failed in a way that may pass (API error, timeout):
    /// retried with backoff; status names the object meanwhile.
    #[error("cannot apply {kind} {name}: {source}")]
    ApplyFailed {
        /// Kind of the object.
        kind: String,
        /// Its name.
        name: String,
        /// The API's error.
        #[source]
        source: kube::Error,
    },
    #[error("the API server rejected {kind} {name}: {message}")]
    ApplyRejected {
        /// Kind of the rejected object.
        kind: String,
        /// Its name.
        name: String,
        /// The API server's message.
        message: String,
    },
    /// A loop that should run until shutdown has ended.
    #[error("stopped: {0}")]
    Stopped(String),
    /// The object lacks metadata the operator needs (name, namespace, uid).
    #[error("object has no {0}")]
    MissingObjectKey(&'static str),
    /// A request to an engine failed.
    #[error("engine request failed: {0}")]
    Engine(String),
    /// The engine runs another backup or restore (409 `operation_in_progress`): try later.
    #[error("the engine is busy with another backup or restore: {0}")]
    OperationInProgress(String),
    /// The engine does not find the files of a `credentials=NAME` yet: the kubelet has not
    /// synced the `<instance>-storage-credentials` Secret into the pod (up to about a minute).
    #[error("the engine does not have the storage credentials yet: {0}")]
    CredentialsNotReady(String),
    /// The engine refused a restore request as invalid (HTTP 4xx other than the above: the
    /// archive URL is malformed or names nothing); retrying the same request cannot help.
    #[error("the engine refused the restore: {0}")]
    RestoreRefused(String),
    /// The engine already has a backup with this id (a start that was sent before).
    #[error("the engine already has this backup: {0}")]
    BackupIdInUse(String),
    /// JSON (de)serialization failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// YAML serialization failed.
    #[error("YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    /// A reconcile found no watch caches for the object's namespace (they are opened with the
    /// controller, before any reconcile): a bug of the operator.
    #[error(
        "the watch caches of namespace {0} are not running; restart the operator and report this"
    )]
    CachesNotRunning(String),
    /// Leader election failed.
    #[error("leader election: {0}")]
    LeaderElection(String),
    /// Local I/O (listening socket...) failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The metrics registry refused a metric.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl Error {
    /// Short, stable label of the error kind (used in metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) | Error::ApplyFailed { .. } => "kube",
            Error::InvalidSpec(_) => "invalid_spec",
            Error::NameConflict { .. } => "name_conflict",
            Error::ApplyRejected { .. } => "apply_rejected",
            Error::Stopped(_) => "stopped",
            Error::MissingObjectKey(_) => "missing_object_key",
            Error::Engine(_) => "engine",
            Error::BackupIdInUse(_) => "backup_id_in_use",
            Error::OperationInProgress(_) => "operation_in_progress",
            Error::CredentialsNotReady(_) => "credentials_not_ready",
            Error::RestoreRefused(_) => "restore_refused",
            Error::Json(_) => "json",
            Error::Yaml(_) => "yaml",
            Error::CachesNotRunning(_) => "caches_not_running",
            Error::LeaderElection(_) => "leader_election",
            Error::Io(_) => "io",
            Error::Metrics(_) => "metrics",
        }
    }

    /// For errors only a change by the user can fix (a foreign object in the way, an object the
    /// API server rejects): the condition reason to report in status. Retrying these quickly
    /// would only repeat the failure, so they go into status with a slow requeue.
    pub fn status_reason(&self) -> Option<&'static str> {
        match self {
            Error::NameConflict { .. } => Some("NameConflict"),
            Error::ApplyRejected { .. } => Some("ApplyRejected"),
            _ => None,
        }
    }

    /// Reason label: the API server's reason for API errors (`Conflict`, `Forbidden`...), else
    /// the kind.
    pub fn reason(&self) -> String {
        match self {
            Error::Kube(kube::Error::Api(status))
            | Error::ApplyFailed {
                source: kube::Error::Api(status),
                ..
            } => {
                if status.reason.is_empty() {
                    format!("Http{}", status.code)
                } else {
                    status.reason.clone()
                }
            }
            Error::Kube(_) | Error::ApplyFailed { .. } => "Transport".to_string(),
            other => other.kind().to_string(),
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
