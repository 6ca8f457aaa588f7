{{/* Names and labels shared by every template. */}}

{{- define "whatsapp-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name: the release's name, with the chart's appended unless the
release's name already holds it (a release named whatsapp-exporter gives
whatsapp-exporter). Truncated to 63 characters, DNS names' limit.
*/}}
{{- define "whatsapp-exporter.fullname" -}}
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

{{- define "whatsapp-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "whatsapp-exporter.labels" -}}
helm.sh/chart: {{ include "whatsapp-exporter.chart" . }}
{{ include "whatsapp-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The pods' labels that selectors match. */}}
{{- define "whatsapp-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "whatsapp-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "whatsapp-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "whatsapp-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "whatsapp-exporter.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
"true" when the pods run as a StatefulSet: with Alertmanager's receivers
and several replicas, the remediation elects each instance's owner among
the replicas by their names (--alertmanager.peers), which only a
StatefulSet keeps stable.
*/}}
{{- define "whatsapp-exporter.statefulSet" -}}
{{- if and .Values.alertmanagerReceiver.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{/*
The base URLs at which Alertmanager reaches the exporter's receivers, as a
JSON list: one per replica with a StatefulSet (every replica must get each
request; only the owner acts), else the receivers' Service.
*/}}
{{- define "whatsapp-exporter.alertmanagerReceiverURLs" -}}
{{- $fullname := include "whatsapp-exporter.fullname" . }}
{{- $urls := list }}
{{- if include "whatsapp-exporter.statefulSet" . }}
{{- range $i := until (int .Values.replicas) }}
{{- $urls = append $urls (printf "http://%s-%d.%s-replicas.%s.svc:%d" $fullname $i $fullname $.Release.Namespace (int $.Values.alertmanagerReceiver.port)) }}
{{- end }}
{{- else }}
{{- $urls = append $urls (printf "http://%s-alertmanager.%s.svc:%d" $fullname .Release.Namespace (int .Values.alertmanagerReceiver.service.port)) }}
{{- end }}
{{- toJson $urls }}
{{- end }}
