//! Event recorder (`events.k8s.io/v1`). kube-runtime's `Recorder` merges repeated Events of
//! one reason into a series keyed without the message, so a second `BackupPruned` only bumps
//! the count of the first Event, which keeps naming the first pruned backup. Here the key
//! includes the message (and the related object): each distinct message is its own Event, and
//! only the same message again becomes a series (`series.count`), as the Events API intends.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{EventType, Reporter};
use kube::{Api, Client};

/// How long a repeat joins the earlier Event's series (kube-runtime uses 6 minutes).
const SERIES_TTL: SignedDuration = SignedDuration::from_mins(6);

/// One Event to publish.
pub(crate) struct Event<'a> {
    pub type_: EventType,
    pub reason: &'a str,
    pub action: &'a str,
    pub note: String,
    pub related: Option<&'a ObjectReference>,
}

/// What makes two Events the same (then the second is counted in the first's series).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    regarding: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    related: Option<(Option<String>, Option<String>, Option<String>)>,
    warning: bool,
    reason: String,
    action: String,
    note: String,
}

fn object_key(
    r: &ObjectReference,
) -> (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    (
        r.kind.clone(),
        r.namespace.clone(),
        r.name.clone(),
        r.uid.clone(),
    )
}

/// Publishes Events for the operator; see the module comment.
pub(crate) struct Recorder {
    client: Client,
    reporter: Reporter,
    published: Mutex<HashMap<Key, (String, i32, Timestamp)>>,
}

impl Recorder {
    pub(crate) fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            published: Mutex::new(HashMap::new()),
        }
    }

    /// Creates the Event, or bumps the series of the same Event published in the last minutes.
    pub(crate) async fn publish(
        &self,
        ev: &Event<'_>,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = Key {
            regarding: object_key(regarding),
            related: ev
                .related
                .map(|r| (r.kind.clone(), r.namespace.clone(), r.name.clone())),
            warning: matches!(ev.type_, EventType::Warning),
            reason: ev.reason.to_string(),
            action: ev.action.to_string(),
            note: ev.note.clone(),
        };
        let earlier = {
            let mut published = self
                .published
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            published.retain(|_, (_, _, last)| {
                last.saturating_add(SERIES_TTL).is_ok_and(|end| end > now)
            });
            published.get(&key).cloned()
        };
        let ns = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), ns);
        let (name, count) = match earlier {
            Some((name, count, _)) => {
                let count = count.saturating_add(1);
                let patch = serde_json::json!({"series": EventSeries {
                    count,
                    last_observed_time: MicroTime(now),
                }});
                events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                (name, count)
            }
            None => {
                let event = self.event(ev, regarding, now);
                let name = event.metadata.name.clone().unwrap_or_default();
                events.create(&PostParams::default(), &event).await?;
                (name, 1)
            }
        };
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (name, count, now));
        Ok(())
    }

    fn event(&self, ev: &Event<'_>, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        K8sEvent {
            action: Some(ev.action.to_string()),
            reason: Some(ev.reason.to_string()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.related.cloned(),
            note: Some(ev.note.clone()),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    regarding
                        .name
                        .as_deref()
                        .unwrap_or(&self.reporter.controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(
                match ev.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..Default::default()
        }
    }
}
