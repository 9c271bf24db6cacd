//! System resources sampled in the background, for health checks.
//!
//! [`ResourceMonitor::start`] spawns one OS thread that samples, every
//! `interval`: global CPU %, memory used/total, this process's resident set
//! size, and the free/total space of the file system holding the data
//! directory (via `sysinfo`). [`ResourceMonitor::snapshot`] only clones the
//! last sample from behind a `RwLock` — no system calls on the read path, so
//! health probes stay cheap. The thread stops when the last clone of the
//! monitor is dropped.
//!
//! Each resource gets a status against [`Thresholds`] (defaults below):
//!
//! | resource | warning | critical |
//! |---|---|---|
//! | CPU | ≥ 90 % | ≥ 98 % |
//! | memory | ≥ 85 % used | ≥ 95 % used |
//! | disk | < 10 % free or < 1 GiB free | < 5 % free or < 256 MiB free |
//!
//! Health maps them to the `system` component: any warning, or a critical CPU or memory, is
//! degraded; only a critical disk is unhealthy (see `server::system_status`).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sysinfo::{Disks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// CPU cores this process may use (its affinity and cgroup quota), read once: the standard
/// library reads the cgroup files on every call, and searches ask on their hot path.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Thresholds for resource statuses. All fields have defaults (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// CPU usage (%) at or above which the status is `warning` (default 90).
    pub cpu_percent_warn: f32,
    /// CPU usage (%) at or above which the status is `critical` (default 98).
    pub cpu_percent_critical: f32,
    /// Memory used (%) at or above which the status is `warning` (default 85).
    pub memory_percent_warn: f32,
    /// Memory used (%) at or above which the status is `critical` (default 95).
    pub memory_percent_critical: f32,
    /// Free disk (%) below which the status is `warning` (default 10).
    pub disk_free_percent_min: f32,
    /// Free disk (%) below which the status is `critical` (default 5).
    pub disk_free_percent_critical: f32,
    /// Free disk bytes below which the status is `warning` (default 1 GiB).
    pub disk_free_bytes_min: u64,
    /// Free disk bytes below which the status is `critical` (default 256 MiB).
    pub disk_free_bytes_critical: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            cpu_percent_warn: 90.0,
            cpu_percent_critical: 98.0,
            memory_percent_warn: 85.0,
            memory_percent_critical: 95.0,
            disk_free_percent_min: 10.0,
            disk_free_percent_critical: 5.0,
            disk_free_bytes_min: 1 << 30,
            disk_free_bytes_critical: 256 << 20,
        }
    }
}

/// Status of one resource (ordered: `Ok < Unknown < Warning < Critical`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceStatus {
    /// Within thresholds.
    Ok,
    /// Could not be measured.
    Unknown,
    /// Above a warning threshold.
    Warning,
    /// Above a critical threshold.
    Critical,
}

/// CPU sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuSample {
    /// Global CPU usage in percent (0 on the very first sample).
    pub percent: f32,
    /// Number of logical CPUs.
    pub cpus: usize,
    /// Status.
    pub status: ResourceStatus,
}

/// Memory sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemorySample {
    /// Used memory in bytes.
    pub used_bytes: u64,
    /// Total memory in bytes.
    pub total_bytes: u64,
    /// Used percentage.
    pub percent: f32,
    /// Resident set size of this process in bytes.
    pub process_rss_bytes: u64,
    /// Status.
    pub status: ResourceStatus,
}

/// Disk sample for the file system holding the data directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskSample {
    /// The data directory.
    pub path: PathBuf,
    /// Mount point of its file system (empty when not found).
    pub mount_point: PathBuf,
    /// Free bytes available.
    pub free_bytes: u64,
    /// Total bytes.
    pub total_bytes: u64,
    /// Free percentage.
    pub free_percent: f32,
    /// Status.
    pub status: ResourceStatus,
}

/// One sample of every resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceSnapshot {
    /// When it was taken.
    pub sampled_at: DateTime<Utc>,
    /// How long sampling took, in milliseconds.
    pub sample_ms: f64,
    /// CPU.
    pub cpu: CpuSample,
    /// Memory.
    pub memory: MemorySample,
    /// Disk.
    pub disk: DiskSample,
    /// Worst status of all resources.
    pub status: ResourceStatus,
}

fn pct(part: u64, total: u64) -> f32 {
    if total == 0 {
        0.0
    } else {
        (part as f64 * 100.0 / total as f64) as f32
    }
}

/// Status of a CPU percentage.
pub fn cpu_status(percent: f32, t: &Thresholds) -> ResourceStatus {
    if percent >= t.cpu_percent_critical {
        ResourceStatus::Critical
    } else if percent >= t.cpu_percent_warn {
        ResourceStatus::Warning
    } else {
        ResourceStatus::Ok
    }
}

/// Status of memory usage.
pub fn memory_status(used: u64, total: u64, t: &Thresholds) -> ResourceStatus {
    if total == 0 {
        return ResourceStatus::Unknown;
    }
    let p = pct(used, total);
    if p >= t.memory_percent_critical {
        ResourceStatus::Critical
    } else if p >= t.memory_percent_warn {
        ResourceStatus::Warning
    } else {
        ResourceStatus::Ok
    }
}

/// Status of free disk space.
pub fn disk_status(free: u64, total: u64, t: &Thresholds) -> ResourceStatus {
    if total == 0 {
        return ResourceStatus::Unknown;
    }
    let p = pct(free, total);
    if p < t.disk_free_percent_critical || free < t.disk_free_bytes_critical {
        ResourceStatus::Critical
    } else if p < t.disk_free_percent_min || free < t.disk_free_bytes_min {
        ResourceStatus::Warning
    } else {
        ResourceStatus::Ok
    }
}

struct Sampler {
    sys: System,
    disks: Disks,
    pid: Option<Pid>,
    data_dir: PathBuf,
    thresholds: Thresholds,
}

impl Sampler {
    fn new(data_dir: PathBuf, thresholds: Thresholds) -> Result<Self, SysresError> {
        let sys = System::new().map_err(|e| SysresError::Sysinfo(e.to_string()))?;
        let disks =
            Disks::new_with_refreshed_list().map_err(|e| SysresError::Sysinfo(e.to_string()))?;
        let pid = sysinfo::get_current_pid().ok();
        Ok(Self {
            sys,
            disks,
            pid,
            data_dir,
            thresholds,
        })
    }

    fn sample(&mut self) -> ResourceSnapshot {
        let started = Instant::now();
        let t = self.thresholds;
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();
        let cpu_percent = self.sys.global_cpu_usage();
        let cpus = self.sys.cpus().len();
        let total = self.sys.total_memory();
        let used = self.sys.used_memory();
        let rss = match self.pid {
            Some(pid) => {
                self.sys.refresh_processes_specifics(
                    ProcessesToUpdate::Some(&[pid]),
                    true,
                    ProcessRefreshKind::nothing().with_memory(),
                );
                self.sys.process(pid).map(|p| p.memory()).unwrap_or(0)
            }
            None => 0,
        };
        self.disks.refresh(true);
        let disk = self.disk_sample();
        let cpu = CpuSample {
            percent: cpu_percent,
            cpus,
            status: cpu_status(cpu_percent, &t),
        };
        let memory = MemorySample {
            used_bytes: used,
            total_bytes: total,
            percent: pct(used, total),
            process_rss_bytes: rss,
            status: memory_status(used, total, &t),
        };
        let status = cpu.status.max(memory.status).max(disk.status);
        ResourceSnapshot {
            sampled_at: Utc::now(),
            sample_ms: started.elapsed().as_secs_f64() * 1000.0,
            cpu,
            memory,
            disk,
            status,
        }
    }

    fn disk_sample(&self) -> DiskSample {
        // the data dir may not exist yet: use its closest existing ancestor
        let mut probe: &Path = &self.data_dir;
        let resolved = loop {
            if let Ok(p) = std::fs::canonicalize(probe) {
                break Some(p);
            }
            match probe.parent() {
                Some(p) if !p.as_os_str().is_empty() => probe = p,
                _ => break std::fs::canonicalize(".").ok(),
            }
        };
        let best = resolved.as_ref().and_then(|r| {
            self.disks
                .iter()
                .filter(|d| r.starts_with(d.mount_point()))
                .max_by_key(|d| d.mount_point().as_os_str().len())
        });
        match best {
            Some(d) => {
                let (free, total) = (d.available_space(), d.total_space());
                DiskSample {
                    path: self.data_dir.clone(),
                    mount_point: d.mount_point().to_path_buf(),
                    free_bytes: free,
                    total_bytes: total,
                    free_percent: pct(free, total),
                    status: disk_status(free, total, &self.thresholds),
                }
            }
            None => DiskSample {
                path: self.data_dir.clone(),
                mount_point: PathBuf::new(),
                free_bytes: 0,
                total_bytes: 0,
                free_percent: 0.0,
                status: ResourceStatus::Unknown,
            },
        }
    }
}

struct Shared {
    last: RwLock<ResourceSnapshot>,
    // dropping the sender (with the last monitor clone) stops the thread
    _stop: mpsc::Sender<()>,
    thresholds: Thresholds,
    interval: Duration,
}

/// Background resource sampler. Cheap to clone; the sampling thread stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct ResourceMonitor {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ResourceMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceMonitor")
            .field("interval", &self.shared.interval)
            .field("thresholds", &self.shared.thresholds)
            .finish()
    }
}

/// Error starting the monitor.
#[derive(Debug, thiserror::Error)]
pub enum SysresError {
    /// The sampling thread could not be spawned.
    #[error("could not start the resource monitor thread: {0}")]
    Thread(#[from] std::io::Error),
    /// sysinfo could not read system information.
    #[error("could not read system information: {0}")]
    Sysinfo(String),
}

impl ResourceMonitor {
    /// Take a first sample now, then sample every `interval` (at least
    /// 200 ms, sysinfo's minimum for CPU usage) on a background thread.
    pub fn start(
        data_dir: impl Into<PathBuf>,
        thresholds: Thresholds,
        interval: Duration,
    ) -> Result<Self, SysresError> {
        let interval = interval.max(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let mut sampler = Sampler::new(data_dir.into(), thresholds)?;
        let first = sampler.sample();
        let (tx, rx) = mpsc::channel::<()>();
        let shared = Arc::new(Shared {
            last: RwLock::new(first),
            _stop: tx,
            thresholds,
            interval,
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("instantdb-sysres".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
                    let Some(shared) = weak.upgrade() else { break };
                    let s = sampler.sample();
                    let previous = shared
                        .last
                        .read()
                        .map(|l| l.status)
                        .unwrap_or(ResourceStatus::Ok);
                    if s.status != previous && s.status >= ResourceStatus::Warning {
                        tracing::warn!(
                            cpu = s.cpu.percent,
                            memory_percent = s.memory.percent,
                            disk_free_percent = s.disk.free_percent,
                            status = ?s.status,
                            "system resources above thresholds"
                        );
                    } else if s.status != previous {
                        tracing::info!(status = ?s.status, "system resources status changed");
                    }
                    let mut w = shared.last.write().unwrap_or_else(|e| e.into_inner());
                    *w = s;
                }
            })?;
        Ok(Self { shared })
    }

    /// The last sample (a clone; no system calls).
    pub fn snapshot(&self) -> ResourceSnapshot {
        self.shared
            .last
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Thresholds in effect.
    pub fn thresholds(&self) -> Thresholds {
        self.shared.thresholds
    }

    /// Sampling interval.
    pub fn interval(&self) -> Duration {
        self.shared.interval
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_thresholds() {
        let t = Thresholds::default();
        assert_eq!(cpu_status(10.0, &t), ResourceStatus::Ok);
        assert_eq!(cpu_status(91.0, &t), ResourceStatus::Warning);
        assert_eq!(cpu_status(99.0, &t), ResourceStatus::Critical);
        assert_eq!(memory_status(50, 100, &t), ResourceStatus::Ok);
        assert_eq!(memory_status(86, 100, &t), ResourceStatus::Warning);
        assert_eq!(memory_status(96, 100, &t), ResourceStatus::Critical);
        assert_eq!(memory_status(0, 0, &t), ResourceStatus::Unknown);
        let gib = 1u64 << 30;
        assert_eq!(disk_status(50 * gib, 100 * gib, &t), ResourceStatus::Ok);
        assert_eq!(disk_status(8 * gib, 100 * gib, &t), ResourceStatus::Warning);
        assert_eq!(
            disk_status(4 * gib, 100 * gib, &t),
            ResourceStatus::Critical
        );
        // small disks: absolute floor
        assert_eq!(disk_status(512 << 20, 2 * gib, &t), ResourceStatus::Warning);
        assert_eq!(
            disk_status(100 << 20, 2 * gib, &t),
            ResourceStatus::Critical
        );
        assert!(ResourceStatus::Critical > ResourceStatus::Warning);
    }

    #[test]
    fn thresholds_deserialize_with_defaults() {
        let t: Thresholds = serde_json::from_str(r#"{"cpu_percent_warn": 50}"#).unwrap();
        assert_eq!(t.cpu_percent_warn, 50.0);
        assert_eq!(
            t.memory_percent_warn,
            Thresholds::default().memory_percent_warn
        );
    }

    #[test]
    fn monitor_samples_in_background_and_snapshots_read_the_latest_sample() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("not-yet-created");
        let m = ResourceMonitor::start(&data, Thresholds::default(), Duration::from_millis(200))
            .unwrap();
        let first = m.snapshot();
        assert!(first.memory.total_bytes > 0);
        assert!(first.memory.process_rss_bytes > 0);
        assert!(first.disk.total_bytes > 0, "{first:?}");
        assert!(first.cpu.cpus > 0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while m.snapshot().sampled_at == first.sampled_at {
            assert!(Instant::now() < deadline, "no new sample");
            std::thread::sleep(Duration::from_millis(50));
        }
        let json = serde_json::to_value(m.snapshot()).unwrap();
        assert!(json["disk"]["free_bytes"].is_u64());
        assert!(
            ["ok", "warning", "critical", "unknown"].contains(&json["status"].as_str().unwrap())
        );
    }
}
