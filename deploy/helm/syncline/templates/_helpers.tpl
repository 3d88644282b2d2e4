{{/*
The five services, in pipeline order, and what each needs. These are facts
of the binaries (see pkg/daemon and services/<name>/main.go), not settings.
*/}}
{{- define "syncline.services" -}}
controlplane connector mapper dedup eventlog
{{- end }}

{{/* Services that open a store: they get SYNCLINE_DATABASE_URL. */}}
{{- define "syncline.storeServices" -}}
controlplane dedup eventlog
{{- end }}

{{/* Services that serve an API: they get SYNCLINE_ADMIN_TOKEN and a Service. */}}
{{- define "syncline.apiServices" -}}
controlplane connector eventlog
{{- end }}

{{/* Services that seal or open endpoint credentials and alert secrets: they get SYNCLINE_MASTER_KEY. */}}
{{- define "syncline.keyServices" -}}
controlplane connector eventlog
{{- end }}

{{/* Services that open tenants' endpoints: they get the egress policy (SYNCLINE_EGRESS_*). */}}
{{- define "syncline.egressServices" -}}
controlplane connector
{{- end }}

{{/* Services that answer the NATS auth callout: they get SYNCLINE_NATS_CALLOUT_SEED. */}}
{{- define "syncline.calloutServices" -}}
controlplane
{{- end }}

{{/* Services that connect out to tenants' endpoints or alert webhooks (networkPolicy.endpointEgress). */}}
{{- define "syncline.outboundServices" -}}
controlplane connector eventlog
{{- end }}

{{/* Services that may run under a HorizontalPodAutoscaler (services.<name>.autoscaling). */}}
{{- define "syncline.autoscaledServices" -}}
connector mapper dedup eventlog
{{- end }}

{{/* Whether a service runs under a HorizontalPodAutoscaler: "true" or "". Call with (dict "root" $ "service" "dedup"). */}}
{{- define "syncline.autoscaled" -}}
{{- $svc := index .root.Values.services .service }}
{{- if and $svc.autoscaling $svc.autoscaling.enabled }}true{{ end }}
{{- end }}

{{/* The chart's name. */}}
{{- define "syncline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name. Truncated to 50 characters so that
"<fullname>-controlplane" still fits the 63 of a Kubernetes name.
*/}}
{{- define "syncline.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A service's resource name. Call with (dict "root" $ "service" "mapper"). */}}
{{- define "syncline.serviceName" -}}
{{- printf "%s-%s" (include "syncline.fullname" .root) .service }}
{{- end }}

{{/* Labels of every resource of the release. */}}
{{- define "syncline.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "syncline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: syncline
{{- end }}

{{/* Selector labels of one service. Call with (dict "root" $ "service" "mapper"). */}}
{{- define "syncline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "syncline.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .service }}
{{- end }}

{{/* All labels of one service's resources. Call with (dict "root" $ "service" "mapper"). */}}
{{- define "syncline.serviceLabels" -}}
{{ include "syncline.labels" .root }}
app.kubernetes.io/component: {{ .service }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "syncline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "syncline.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding SYNCLINE_DATABASE_URL, SYNCLINE_ADMIN_TOKEN, SYNCLINE_MASTER_KEY and the NATS password and callout seed. */}}
{{- define "syncline.secretName" -}}
{{- default (include "syncline.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* A service's image: <registry>/syncline-<service>:<tag>. Call with (dict "root" $ "service" "mapper"). */}}
{{- define "syncline.image" -}}
{{- $image := .root.Values.image }}
{{- printf "%s/syncline-%s:%s" (trimSuffix "/" $image.registry) .service (default .root.Chart.AppVersion $image.tag | toString) }}
{{- end }}
