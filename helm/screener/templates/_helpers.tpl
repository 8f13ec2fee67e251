{{/* Names */}}
{{- define "screener.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "screener.fullname" -}}
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

{{- define "screener.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "screener.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "web") */}}
{{- define "screener.selectorLabels" -}}
app.kubernetes.io/name: {{ include "screener.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "screener.componentLabels" -}}
{{ include "screener.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "screener.image" -}}
{{ printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "screener.secretName" -}}
{{- default (printf "%s-secrets" (include "screener.fullname" .)) .Values.existingSecret }}
{{- end }}

{{- define "screener.configName" -}}
{{ include "screener.fullname" . }}-config
{{- end }}

{{- define "screener.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "screener.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Pod annotations that roll the pods when the configuration or the chart's Secret changes. */}}
{{- define "screener.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if not .Values.existingSecret }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- end }}

{{/* Environment of every app container: the ConfigMap and the Secret. */}}
{{- define "screener.envFrom" -}}
- configMapRef:
    name: {{ include "screener.configName" . }}
- secretRef:
    name: {{ include "screener.secretName" . }}
{{- end }}

{{/* The pod IP, for hosts Django answers to (kubelet probes and Prometheus scrapes address the pod by IP). */}}
{{- define "screener.podIpEnv" -}}
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: DJANGO_ALLOWED_HOSTS
  value: {{ include "screener.allowedHosts" . | quote }}
{{- end }}

{{- define "screener.allowedHosts" -}}
{{- $hosts := list -}}
{{- if .Values.ingress.enabled -}}
{{- range .Values.ingress.hosts }}{{ $hosts = append $hosts .host }}{{ end -}}
{{- end -}}
{{- range .Values.allowedHosts }}{{ $hosts = append $hosts . }}{{ end -}}
{{- $hosts = append $hosts "$(POD_IP)" -}}
{{ join "," $hosts }}
{{- end }}

{{/* Pod-level settings shared by every component. */}}
{{- define "screener.podSpecCommon" -}}
serviceAccountName: {{ include "screener.serviceAccountName" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
volumes:
  # The root filesystem is read-only; /tmp holds the Prometheus multiprocess files and Celery's scratch files.
  - name: tmp
    emptyDir:
      sizeLimit: 256Mi
{{- end }}

{{- define "screener.containerCommon" -}}
image: {{ include "screener.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end }}

{{/* nodeSelector, tolerations and affinity of a component: (dict "v" .Values.web) */}}
{{- define "screener.scheduling" -}}
{{- with .v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
