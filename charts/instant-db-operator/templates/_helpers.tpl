{{- define "idbo.name" -}}instant-db-operator{{- end -}}
{{- define "idbo.labels" -}}
app.kubernetes.io/name: instant-db-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: instant-db
{{- end -}}
{{- define "idbo.selector" -}}
app.kubernetes.io/name: instant-db-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "idbo.rules" -}}
# Least privilege, checked both ways by operator/tests/chart.rs: every request the operator makes
# is granted, and nothing is granted that it does not use. `create` on applied kinds: a real API
# server authorizes a server-side apply that creates its object as `create` as well as `patch`.
- apiGroups: ["instantdb.io"]
  resources: ["instantdbs", "instantdbbackuppolicies"]
  # get: a backup's instance and policy, a policy's instance; list/watch: the controllers.
  verbs: ["get", "list", "watch"]
- apiGroups: ["instantdb.io"]
  resources: ["instantdbbackups"]
  # patch: the archive finalizer and retention's mark; create: scheduled runs; delete: retention.
  verbs: ["list", "watch", "patch", "create", "delete"]
- apiGroups: ["instantdb.io"]
  resources: ["instantdbs/status", "instantdbbackuppolicies/status", "instantdbbackups/status", "instantdbrestores/status"]
  # status is written with server-side apply on the status subresource.
  verbs: ["patch"]
- apiGroups: ["instantdb.io"]
  resources: ["instantdbrestores"]
  # create: automatic restores (spec.recovery.autoRestore).
  verbs: ["list", "watch", "create"]
- apiGroups: [""]
  resources: ["configmaps", "services"]
  # list/watch: the InstantDb controller's watch caches (label-selected); get: a look before a
  # create, so an object of that name without the operator's labels is never taken over.
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  # list/watch: the operator caches only the Secrets it owns (label-selected), to read its
  # tokens without a GET and to recreate a deleted one.
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  # list/watch: the engine PVCs are cached (selected by the engine pod labels); get: whether
  # the claims of volume backup destinations exist (the user's, not labelled).
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  # list/watch: the engine pods are cached (selected by their labels); get: a backup's pod.
  verbs: ["get", "list", "watch"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  # delete: the PDB goes when spec.disruption.protect is removed or the instance is suspended.
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
