{{/*
The workload's pieces, shared by the Deployment and the StatefulSet (one
pod template, whichever kind runs it), and the checks of values that the
schema cannot express.
*/}}

{{/* Where the pod finds its files. */}}
{{- define "whatsapp-exporter.configDir" -}}/etc/whatsapp_exporter{{- end }}
{{- define "whatsapp-exporter.configFile" -}}whatsapp_exporter.yml{{- end }}
{{- define "whatsapp-exporter.tokenDir" -}}/etc/whatsapp_exporter/secrets{{- end }}

{{/* The ConfigMap holding the configuration; empty: the simulator (--demo). */}}
{{- define "whatsapp-exporter.configMapName" -}}
{{- if .Values.config.existingConfigMap }}
{{- .Values.config.existingConfigMap }}
{{- else if .Values.config.file }}
{{- printf "%s-config" (include "whatsapp-exporter.fullname" .) }}
{{- end }}
{{- end }}

{{/* The Secret holding the token files; empty: none mounted. */}}
{{- define "whatsapp-exporter.tokensSecretName" -}}
{{- if .Values.tokens.existingSecret }}
{{- .Values.tokens.existingSecret }}
{{- else if .Values.tokens.create }}
{{- printf "%s-tokens" (include "whatsapp-exporter.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Combinations of values that would install something other than what was
asked: each fails the render with what to change. Tokens given in values
without tokens.create are refused rather than dropped (the pod would start
without them) or rendered (the user did not ask for a Secret in the
output); the message names no value.
*/}}
{{- define "whatsapp-exporter.validate" -}}
{{- if and .Values.config.file .Values.config.existingConfigMap }}
{{- fail "config.file and config.existingConfigMap are both set: give the configuration in one of them" }}
{{- end }}
{{- if and .Values.tokens.create .Values.tokens.existingSecret }}
{{- fail "tokens.create and tokens.existingSecret are both set: either the chart renders the Secret from tokens.values, or the pods mount the existing one" }}
{{- end }}
{{- if and .Values.tokens.values (not .Values.tokens.create) }}
{{- fail "tokens.values is set but tokens.create is false: the chart renders tokens only when asked (tokens.create: true); prefer an existing Secret (tokens.existingSecret) and remove tokens.values" }}
{{- end }}
{{- if and .Values.tokens.create (not .Values.tokens.values) }}
{{- fail "tokens.create is true but tokens.values is empty: give the token files as tokens.values (file name: token)" }}
{{- end }}
{{- if and .Values.notifications.ingress.enabled (not .Values.notifications.enabled) }}
{{- fail "notifications.ingress.enabled needs notifications.enabled: the Ingress routes to the notification receiver" }}
{{- end }}
{{- if and .Values.notifications.ingress.enabled (or (not .Values.notifications.ingress.host) (not .Values.notifications.ingress.tlsSecretName)) }}
{{- fail "notifications.ingress needs host and tlsSecretName: the providers send their credentials with each notification, so the Ingress serves TLS only" }}
{{- end }}
{{- if and (eq .Values.scrape.mode "single-endpoint") .Values.scrape.shards }}
{{- fail "scrape.shards needs scrape.mode: multi-target: the single endpoint is one target, which cannot be split" }}
{{- end }}
{{- end }}

{{/* The exporter's command-line arguments. */}}
{{- define "whatsapp-exporter.args" -}}
{{- $fullname := include "whatsapp-exporter.fullname" . -}}
{{- if include "whatsapp-exporter.configMapName" . -}}
- --config.file={{ include "whatsapp-exporter.configDir" . }}/{{ include "whatsapp-exporter.configFile" . }}
{{- else -}}
- --demo
{{- end }}
{{- if .Values.config.expandEnvironmentVariables }}
- --config.expand-environment-variables
{{- end }}
- --web.listen-address=:10040
- --log.level={{ .Values.log.level }}
- --log.format={{ .Values.log.format }}
{{- if .Values.notifications.enabled }}
- --webhook.listen-address=:{{ int .Values.notifications.port }}
{{- if .Values.notifications.webConfigSecret }}
- --webhook.config.file={{ include "whatsapp-exporter.configDir" . }}/webhook/web-config.yml
{{- end }}
{{- end }}
{{- if .Values.alertmanagerReceiver.enabled }}
- --alertmanager.listen-address=:{{ int .Values.alertmanagerReceiver.port }}
{{- if .Values.alertmanagerReceiver.webConfigSecret }}
- --alertmanager.config.file={{ include "whatsapp-exporter.configDir" . }}/alertmanager/web-config.yml
{{- end }}
{{- if include "whatsapp-exporter.statefulSet" . }}
{{- $peers := list }}
{{- range $i := until (int .Values.replicas) }}
{{- $peers = append $peers (printf "%s-%d" $fullname $i) }}
{{- end }}
- --alertmanager.replica=$(POD_NAME)
- --alertmanager.peers={{ join "," $peers }}
{{- end }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
The pod template. A change of the chart's ConfigMap or Secret changes its
checksum annotations and so rolls the pods: the exporter reloads only on
SIGHUP or POST /-/reload, and the configuration is mounted by subPath,
which the kubelet never updates in a running pod.
*/}}
{{- define "whatsapp-exporter.podTemplate" -}}
{{- $configMap := include "whatsapp-exporter.configMapName" . }}
{{- $tokens := include "whatsapp-exporter.tokensSecretName" . }}
{{- /* A listener's web configuration is mounted only with its listener. */}}
{{- $webhookWebConfig := and .Values.notifications.enabled .Values.notifications.webConfigSecret }}
{{- $alertmanagerWebConfig := and .Values.alertmanagerReceiver.enabled .Values.alertmanagerReceiver.webConfigSecret -}}
metadata:
  {{- if or .Values.config.file .Values.tokens.create .Values.podAnnotations }}
  annotations:
    {{- if .Values.config.file }}
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- end }}
    {{- if .Values.tokens.create }}
    checksum/tokens: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  labels:
    {{- include "whatsapp-exporter.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "whatsapp-exporter.serviceAccountName" . }}
  # The exporter never calls the Kubernetes API.
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . | quote }}
  {{- end }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: whatsapp-exporter
      image: {{ include "whatsapp-exporter.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        {{- include "whatsapp-exporter.args" . | nindent 8 }}
      ports:
        - name: http-metrics
          containerPort: 10040
          protocol: TCP
        {{- if .Values.notifications.enabled }}
        - name: http-webhook
          containerPort: {{ int .Values.notifications.port }}
          protocol: TCP
        {{- end }}
        {{- if .Values.alertmanagerReceiver.enabled }}
        - name: http-alertmgr
          containerPort: {{ int .Values.alertmanagerReceiver.port }}
          protocol: TCP
        {{- end }}
      {{- $memoryLimit := dig "limits" "memory" "" (.Values.resources | default dict) }}
      {{- if or $memoryLimit (include "whatsapp-exporter.statefulSet" .) .Values.extraEnv }}
      env:
        {{- if $memoryLimit }}
        # The Go runtime collects before the kernel kills.
        - name: GOMEMLIMIT
          valueFrom:
            resourceFieldRef:
              resource: limits.memory
        {{- end }}
        {{- if include "whatsapp-exporter.statefulSet" . }}
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      livenessProbe:
        httpGet:
          path: /-/healthy
          port: http-metrics
        periodSeconds: 10
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /-/healthy
          port: http-metrics
        periodSeconds: 5
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if or $configMap $tokens $webhookWebConfig $alertmanagerWebConfig .Values.extraVolumeMounts }}
      volumeMounts:
        {{- if $configMap }}
        - name: config
          mountPath: {{ include "whatsapp-exporter.configDir" . }}/{{ include "whatsapp-exporter.configFile" . }}
          subPath: {{ include "whatsapp-exporter.configFile" . }}
          readOnly: true
        {{- end }}
        {{- if $tokens }}
        - name: tokens
          mountPath: {{ include "whatsapp-exporter.tokenDir" . }}
          readOnly: true
        {{- end }}
        {{- if $webhookWebConfig }}
        - name: webhook-web-config
          mountPath: {{ include "whatsapp-exporter.configDir" . }}/webhook
          readOnly: true
        {{- end }}
        {{- if $alertmanagerWebConfig }}
        - name: alertmanager-web-config
          mountPath: {{ include "whatsapp-exporter.configDir" . }}/alertmanager
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
  {{- if or $configMap $tokens $webhookWebConfig $alertmanagerWebConfig .Values.extraVolumes }}
  volumes:
    {{- if $configMap }}
    - name: config
      configMap:
        name: {{ $configMap }}
    {{- end }}
    {{- if $tokens }}
    - name: tokens
      secret:
        secretName: {{ $tokens }}
        defaultMode: 0400
    {{- end }}
    {{- if $webhookWebConfig }}
    - name: webhook-web-config
      secret:
        secretName: {{ .Values.notifications.webConfigSecret }}
        defaultMode: 0400
    {{- end }}
    {{- if $alertmanagerWebConfig }}
    - name: alertmanager-web-config
      secret:
        secretName: {{ .Values.alertmanagerReceiver.webConfigSecret }}
        defaultMode: 0400
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
