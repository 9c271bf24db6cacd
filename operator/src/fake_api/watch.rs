//! Watches of the fake API server: every change of a stored object is sent to the open watches
//! whose list and label selector it falls in, as an API server does (ADDED / MODIFIED /
//! DELETED, and DELETED / ADDED when a label change moves the object out of / into a watch's
//! selector). Recent changes are kept so a watch that starts at the resourceVersion of a list
//! misses nothing that happened in between.
//!
//! What a real API server does differently: it sends BOOKMARK events, ends each watch after
//! `timeoutSeconds` (the client then resumes it), and keeps history for about five minutes
//! (etcd compaction) rather than a number of events; a too-old resourceVersion is answered
//! with 410 Gone in both.

use std::collections::VecDeque;

use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::request::{in_list, selected};

/// Changes kept for watches that resume from an older resourceVersion.
const HISTORY: usize = 20_000;

/// One change of a stored object.
struct Change {
    rv: u64,
    path: String,
    old: Option<Value>,
    new: Option<Value>,
}

/// One open watch: a list path and the query (label selector) it was opened with.
struct Watch {
    list: String,
    query: String,
    tx: UnboundedSender<Value>,
}

/// The open watches and the recent changes.
#[derive(Default)]
pub(super) struct Watches {
    open: Vec<Watch>,
    history: VecDeque<Change>,
}

/// The watch event `watch` sees for a change of an object from `old` to `new` (None: absent).
fn event_for(
    rv: u64,
    list: &str,
    query: &str,
    path: &str,
    old: Option<&Value>,
    new: Option<&Value>,
) -> Option<Value> {
    if !in_list(list, path) {
        return None;
    }
    let seen_old = old.filter(|o| selected(query, o));
    let seen_new = new.filter(|o| selected(query, o));
    match (seen_old, seen_new) {
        (None, Some(n)) => Some(json!({"type": "ADDED", "object": n})),
        (Some(_), Some(n)) => Some(json!({"type": "MODIFIED", "object": n})),
        // Deleted, or no longer selected: the last state, with the deletion's version.
        (Some(o), None) => {
            let mut last = new.cloned().unwrap_or_else(|| o.clone());
            if let Some(meta) = last.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("resourceVersion".into(), json!(rv.to_string()));
            }
            Some(json!({"type": "DELETED", "object": last}))
        }
        (None, None) => None,
    }
}

impl Watches {
    /// Records a change at `rv` and sends it to every open watch that sees it.
    pub(super) fn changed(
        &mut self,
        rv: u64,
        path: &str,
        old: Option<&Value>,
        new: Option<&Value>,
    ) {
        self.open
            .retain(|w| match event_for(rv, &w.list, &w.query, path, old, new) {
                Some(ev) => w.tx.send(ev).is_ok(),
                None => !w.tx.is_closed(),
            });
        self.history.push_back(Change {
            rv,
            path: path.to_string(),
            old: old.cloned(),
            new: new.cloned(),
        });
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
    }

    /// Opens a watch of `list` with `query`. `from` is the request's resourceVersion: changes
    /// after it are replayed; absent or `0` starts with an ADDED event per current object
    /// (`current`), as an API server does.
    pub(super) fn open<'a>(
        &mut self,
        list: &str,
        query: &str,
        from: Option<u64>,
        current: impl Iterator<Item = (&'a String, &'a Value)>,
    ) -> UnboundedReceiver<Value> {
        let (tx, rx) = unbounded_channel();
        match from.filter(|rv| *rv > 0) {
            None => {
                for (path, obj) in current {
                    if let Some(ev) = event_for(version(obj), list, query, path, None, Some(obj)) {
                        let _ = tx.send(ev);
                    }
                }
            }
            Some(rv) => {
                let oldest = self.history.front().map_or(u64::MAX, |c| c.rv);
                if rv + 1 < oldest && self.history.len() >= HISTORY {
                    let _ = tx.send(json!({"type": "ERROR", "object": {
                        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "reason": "Expired", "code": 410,
                        "message": format!("too old resource version: {rv} ({oldest})")}}));
                } else {
                    for c in self.history.iter().filter(|c| c.rv > rv) {
                        if let Some(ev) =
                            event_for(c.rv, list, query, &c.path, c.old.as_ref(), c.new.as_ref())
                        {
                            let _ = tx.send(ev);
                        }
                    }
                }
            }
        }
        self.open.push(Watch {
            list: list.to_string(),
            query: query.to_string(),
            tx: tx.clone(),
        });
        rx
    }
}

/// The `resourceVersion` parameter of a query.
pub(super) fn resource_version(query: &str) -> Option<u64> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("resourceVersion="))
        .and_then(|v| v.parse().ok())
}

/// The resourceVersion of a stored object (for [`Watches::changed`]).
pub(super) fn version(v: &Value) -> u64 {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn obj(rv: u64, tier: &str) -> Value {
        json!({"metadata": {"name": "a", "resourceVersion": rv.to_string(), "labels": {"tier": tier}}})
    }

    #[test]
    fn a_label_change_moves_an_object_out_of_and_into_a_selected_watch() {
        let mut w = Watches::default();
        let path = "/api/v1/namespaces/n/configmaps/a".to_string();
        let mut rx = w.open(
            "/api/v1/namespaces/n/configmaps",
            "labelSelector=tier%3Dweb",
            None,
            std::iter::empty(),
        );
        w.changed(1, &path, None, Some(&obj(1, "web")));
        w.changed(2, &path, Some(&obj(1, "web")), Some(&obj(2, "db")));
        w.changed(3, &path, Some(&obj(2, "db")), Some(&obj(3, "web")));
        w.changed(4, &path, Some(&obj(3, "web")), None);
        let types: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(types, ["ADDED", "DELETED", "ADDED", "DELETED"]);
    }

    #[test]
    fn a_watch_from_a_list_version_gets_what_changed_after_it() {
        let mut w = Watches::default();
        let path = "/api/v1/namespaces/n/configmaps/a".to_string();
        w.changed(1, &path, None, Some(&obj(1, "web")));
        w.changed(2, &path, Some(&obj(1, "web")), Some(&obj(2, "web")));
        let mut rx = w.open("/api/v1/configmaps", "", Some(1), std::iter::empty());
        let ev = rx.try_recv().unwrap();
        assert_eq!(ev["type"], "MODIFIED");
        assert_eq!(ev["object"]["metadata"]["resourceVersion"], "2");
        assert!(rx.try_recv().is_err());
    }
}
