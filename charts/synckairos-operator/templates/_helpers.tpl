{{/*
Names and labels shared by every template, so that selectors and labels stay
consistent across objects (a selector that drifts from its pods' labels
silently breaks a Service).
*/}}

{{/* Chart name, overridable; 63 chars is the DNS label limit. */}}
{{- define "synckairos-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name used as the prefix of every object. If the release name already
contains the chart name it is used alone, to avoid "x-synckairos-operator-synckairos-operator".
*/}}
{{- define "synckairos-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart label value: name-version, "+" is not allowed in label values. */}}
{{- define "synckairos-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object of this release carries. */}}
{{- define "synckairos-operator.commonLabels" -}}
helm.sh/chart: {{ include "synckairos-operator.chart" . }}
app.kubernetes.io/name: {{ include "synckairos-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: synckairos
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of the operator's own objects (Deployment, Service, RBAC, ...). */}}
{{- define "synckairos-operator.labels" -}}
{{ include "synckairos-operator.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels that select the operator pods: stable across upgrades (selectors are immutable). */}}
{{- define "synckairos-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "synckairos-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Metrics Service name: a Service name is a DNS label (63 chars), suffix included. */}}
{{- define "synckairos-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "synckairos-operator.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/* ServiceAccount the operator runs as. */}}
{{- define "synckairos-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "synckairos-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Operator image reference: registry/repository, then @digest or :tag (tag defaults to appVersion). */}}
{{- define "synckairos-operator.image" -}}
{{- $img := .Values.operator.image }}
{{- $repo := $img.repository }}
{{- if $img.registry }}
{{- $repo = printf "%s/%s" (trimSuffix "/" $img.registry) $img.repository }}
{{- end }}
{{- if $img.digest }}
{{- printf "%s@%s" $repo $img.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion $img.tag | toString) }}
{{- end }}
{{- end }}

{{/* Name of the SyncKairosCluster rendered from cluster.spec: the release name unless set. */}}
{{- define "synckairos-operator.clusterName" -}}
{{- default .Release.Name .Values.cluster.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Namespace of the SyncKairosCluster: it must be one the operator watches, so
it follows watchNamespace unless set explicitly (and then must agree).
*/}}
{{- define "synckairos-operator.clusterNamespace" -}}
{{- $ns := .Values.cluster.namespace | default .Values.watchNamespace | default .Release.Namespace }}
{{- if and .Values.watchNamespace (ne $ns .Values.watchNamespace) }}
{{- fail (printf "cluster.namespace %q is not watched: the operator only watches watchNamespace %q" $ns .Values.watchNamespace) }}
{{- end }}
{{- $ns }}
{{- end }}

{{/*
Labels the operator puts on the server pods of a SyncKairosCluster
(operator/src/build/mod.rs selector_labels with server::COMPONENT); the
NetworkPolicy selects pods with them. chartcheck.py compares them with the source.
*/}}
{{- define "synckairos-operator.serverPodLabels" -}}
app.kubernetes.io/name: synckairos
app.kubernetes.io/instance: {{ include "synckairos-operator.clusterName" . }}
app.kubernetes.io/component: server
{{- end }}

{{/*
Container port of the server pods: operator/src/build/mod.rs SERVER_PORT (fixed
by the operator, not configurable; chartcheck.py compares it with the source).
*/}}
{{- define "synckairos-operator.serverPort" -}}
8080
{{- end }}

{{/*
Port of the server's admin listener (/metrics, /ready, /health): operator/src/build/mod.rs
ADMIN_PORT, named "admin" on the server pods and Service (chartcheck.py compares both).
*/}}
{{- define "synckairos-operator.serverAdminPort" -}}
9090
{{- end }}

{{/* Secret with the server's API keys and token secret: cluster.spec.server.auth.existingSecret, else <cluster>-auth. */}}
{{- define "synckairos-operator.authSecretName" -}}
{{- dig "server" "auth" "existingSecret" "" .Values.cluster.spec | default (printf "%s-auth" (include "synckairos-operator.clusterName" .)) }}
{{- end }}

{{/* 32 random bytes, base64url without padding (43 characters): an API key or token secret. */}}
{{- define "synckairos-operator.randomToken" -}}
{{- randBytes 32 | replace "+" "-" | replace "/" "_" | trimSuffix "=" }}
{{- end }}

{{/*
The memory engine (cluster.spec.redis.mode memory) keeps every session in one server
process: the chart refuses more than one server pod, as the operator clamps to one.
*/}}
{{- define "synckairos-operator.checkMemoryEngine" -}}
{{- $spec := .Values.cluster.spec }}
{{- if eq (dig "redis" "mode" "" $spec) "memory" }}
{{- $replicas := dig "server" "replicas" 1 $spec | int }}
{{- if or (gt $replicas 1) (dig "server" "autoscaling" "" $spec) }}
{{- fail "cluster.spec.redis.mode memory runs exactly one server pod (the memory engine keeps every session in one process; a second pod would not see them): set cluster.spec.server.replicas to 1 and remove cluster.spec.server.autoscaling, or configure Redis (redis.mode managed or external) to run more" }}
{{- end }}
{{- end }}
{{- end }}
