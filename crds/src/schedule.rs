//! Validation of `InstantDbBackupPolicy.spec.schedule`.
//!
//! The CRD schema only checks the shape (five fields or a macro). This parses the schedule
//! with croner, the cron implementation the backup-policy controller computes run times with,
//! so a schedule that passes here is one that controller can run.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Why a schedule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.schedule {schedule:?} is not a usable cron schedule: {why}")]
pub struct ScheduleError {
    /// The rejected schedule.
    pub schedule: String,
    /// What is wrong with it.
    pub why: String,
}

/// Parses a schedule: five fields (minute hour day-of-month month day-of-week, UTC) or one of
/// `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly` (the set
/// Kubernetes CronJobs accept). Seconds and years are not allowed.
pub fn parse_schedule(schedule: &str) -> Result<Cron, ScheduleError> {
    let err = |why: String| ScheduleError {
        schedule: schedule.to_string(),
        why,
    };
    let trimmed = schedule.trim();
    // croner knows every CronJob macro but `@midnight`, which CronJobs treat as `@daily`.
    let pattern = if trimmed.eq_ignore_ascii_case("@midnight") {
        "@daily"
    } else {
        trimmed
    };
    if pattern.starts_with('@') {
        const MACROS: [&str; 6] = [
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@hourly",
        ];
        if !MACROS.iter().any(|m| m.eq_ignore_ascii_case(pattern)) {
            return Err(err(format!("unknown macro {pattern}")));
        }
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(pattern)
        .map_err(|e| err(e.to_string()))
}

/// Checks that `schedule` parses and fires at least once after `now` (a schedule such as
/// `0 0 30 2 *`, February 30th, parses but never runs).
pub fn validate_schedule(schedule: &str, now: DateTime<Utc>) -> Result<(), ScheduleError> {
    next_run(schedule, now).map(|_| ())
}

/// The first run strictly after `after`.
pub fn next_run(schedule: &str, after: DateTime<Utc>) -> Result<DateTime<Utc>, ScheduleError> {
    parse_schedule(schedule)?
        .find_next_occurrence(&after, false)
        .map_err(|e| ScheduleError {
            schedule: schedule.to_string(),
            why: format!("it never fires ({e})"),
        })
}

/// [`next_run`] on the Kubernetes API's timestamps (`jiff`), at whole-second precision.
pub fn next_run_after(
    schedule: &str,
    after: k8s_openapi::jiff::Timestamp,
) -> Result<k8s_openapi::jiff::Timestamp, ScheduleError> {
    let err = |why: String| ScheduleError {
        schedule: schedule.to_string(),
        why,
    };
    let after = DateTime::<Utc>::from_timestamp(after.as_second(), 0)
        .ok_or_else(|| err(format!("{after} is out of range")))?;
    let next = next_run(schedule, after)?;
    k8s_openapi::jiff::Timestamp::from_second(next.timestamp())
        .map_err(|e| err(format!("next run {next} is out of range: {e}")))
}

/// The latest run of `schedule` at or before `at`, at whole-second precision (None when it has
/// not fired within the range croner searches).
pub fn latest_run_at_or_before(
    schedule: &str,
    at: k8s_openapi::jiff::Timestamp,
) -> Result<Option<k8s_openapi::jiff::Timestamp>, ScheduleError> {
    let cron = parse_schedule(schedule)?;
    let Some(at) = DateTime::<Utc>::from_timestamp(at.as_second(), 0) else {
        return Ok(None);
    };
    Ok(cron
        .find_previous_occurrence(&at, true)
        .ok()
        .and_then(|t| k8s_openapi::jiff::Timestamp::from_second(t.timestamp()).ok()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 30, 0).unwrap()
    }

    #[test]
    fn five_field_schedules_and_macros_are_accepted() {
        for ok in [
            "0 3 * * *",
            "*/15 * * * *",
            "0 0 * * SUN",
            "30 2 1-7 * MON-FRI",
            "0 0 1 JAN,JUL *",
            "@daily",
            "@midnight",
            "@hourly",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
        ] {
            assert!(
                validate_schedule(ok, now()).is_ok(),
                "{ok}: {:?}",
                validate_schedule(ok, now())
            );
        }
    }

    #[test]
    fn malformed_schedules_are_rejected_with_the_schedule_in_the_message() {
        for bad in [
            "",
            "* * * *",
            "0 0 3 * * *",
            "0 0 3 * * * 2027",
            "61 * * * *",
            "0 25 * * *",
            "0 0 32 * *",
            "0 0 * 13 *",
            "0 0 * * 8",
            "@reboot",
            "@every 5m",
            "every day",
            "a b c d e",
        ] {
            let e = validate_schedule(bad, now()).unwrap_err();
            assert_eq!(e.schedule, bad);
            assert!(e.to_string().contains("spec.schedule"), "{e}");
        }
    }

    #[test]
    fn a_schedule_that_never_fires_is_rejected() {
        let e = validate_schedule("0 0 30 2 *", now()).unwrap_err();
        assert!(e.why.contains("never fires"), "{e}");
    }

    #[test]
    fn next_run_is_in_utc_and_after_the_given_time() {
        assert_eq!(
            next_run("0 3 * * *", now()).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 11, 3, 0, 0).unwrap()
        );
        assert_eq!(
            next_run("@midnight", now()).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 11, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn next_run_after_works_on_api_timestamps_and_is_strictly_later() {
        let at: k8s_openapi::jiff::Timestamp = "2026-03-10T03:00:00Z".parse().unwrap();
        assert_eq!(
            next_run_after("0 3 * * *", at).unwrap().to_string(),
            "2026-03-11T03:00:00Z"
        );
        assert_eq!(
            next_run_after("@hourly", at).unwrap().to_string(),
            "2026-03-10T04:00:00Z"
        );
        assert!(next_run_after("0 0 30 2 *", at).is_err());
    }

    #[test]
    fn the_latest_run_is_found_backwards_including_the_given_time() {
        let at: k8s_openapi::jiff::Timestamp = "2026-03-10T03:00:00Z".parse().unwrap();
        let latest = |s: &str, t: k8s_openapi::jiff::Timestamp| {
            latest_run_at_or_before(s, t)
                .unwrap()
                .map(|t| t.to_string())
        };
        assert_eq!(
            latest("0 3 * * *", at).as_deref(),
            Some("2026-03-10T03:00:00Z")
        );
        let later: k8s_openapi::jiff::Timestamp = "2026-03-10T02:59:59Z".parse().unwrap();
        assert_eq!(
            latest("0 3 * * *", later).as_deref(),
            Some("2026-03-09T03:00:00Z")
        );
        assert!(latest_run_at_or_before("not a schedule", at).is_err());
    }
}
