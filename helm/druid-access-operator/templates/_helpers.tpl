{{/* Names: the release's full name, unless the release is named after the chart. */}}
{{- define "dao.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "dao.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "dao.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dao.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dao.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Peering (high availability) is on whenever more than one replica runs. */}}
{{- define "dao.peering" -}}
{{- if gt (int .Values.replicaCount) 1 -}}{{ include "dao.fullname" . }}{{- end -}}
{{- end -}}

{{/* Namespaces the operator's namespaced RBAC is bound in: the watched ones and its own. */}}
{{- define "dao.rbacNamespaces" -}}
{{- $all := list .Release.Namespace -}}
{{- range .Values.watch.namespaces -}}{{- $all = append $all . -}}{{- end -}}
{{- $all | uniq | toJson -}}
{{- end -}}

{{/* The operator configuration file, rendered from values. Chart-only keys (caSecret) become
what the operator reads (caBundle, a mounted file); the delegation lists (privilegedNamespaces,
adoptionNamespaces) and leaderHosts are rendered only when non-empty: left out, they mean "none". */}}
{{- define "dao.config" -}}
namespace: {{ .Release.Namespace }}
clusters:
{{- if .Values.clusters }}
{{- range $name, $c := .Values.clusters }}
  {{ $name }}:
    {{- $cfg := omit $c "caSecret" }}
    {{- range $key := list "privilegedNamespaces" "adoptionNamespaces" "leaderHosts" }}
    {{- if not (get $cfg $key) }}
    {{- $cfg = omit $cfg $key }}
    {{- end }}
    {{- end }}
    {{- if $c.caSecret }}
    {{- $cfg = set $cfg "caBundle" (printf "/etc/druid-access/ca/cluster-%s/%s" $name ($c.caSecret.key | default "ca.crt")) }}
    {{- end }}
    {{- toYaml $cfg | nindent 4 }}
{{- end }}
{{- else }} {}
{{- end }}
pivots:
{{- if .Values.pivots }}
{{- range $name, $p := .Values.pivots }}
  {{ $name }}:
    {{- $cfg := omit $p "caSecret" }}
    {{- range $key := list "adoptionNamespaces" }}
    {{- if not (get $cfg $key) }}
    {{- $cfg = omit $cfg $key }}
    {{- end }}
    {{- end }}
    {{- if $p.caSecret }}
    {{- $cfg = set $cfg "caBundle" (printf "/etc/druid-access/ca/pivot-%s/%s" $name ($p.caSecret.key | default "ca.crt")) }}
    {{- end }}
    {{- toYaml $cfg | nindent 4 }}
{{- end }}
{{- else }} {}
{{- end }}
{{- end -}}
