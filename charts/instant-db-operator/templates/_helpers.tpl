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
- apiGroups: ["instantdb.io"]
  resources: ["instantdbs", "instantdbbackuppolicies", "instantdbbackups", "instantdbrestores"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["instantdb.io"]
  resources: ["instantdbs/status", "instantdbbackuppolicies/status", "instantdbbackups/status", "instantdbrestores/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["instantdb.io"]
  resources: ["instantdbbackups"]
  # create: scheduled runs; delete: retention.
  verbs: ["create", "delete"]
- apiGroups: ["instantdb.io"]
  resources: ["instantdbrestores"]
  # create: automatic restores (spec.recovery.autoRestore).
  verbs: ["create"]
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
- apiGroups: [""]
  resources: ["secrets"]
  # list/watch: the operator watches the admin Secrets it owns (label-selected) to recreate them.
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
