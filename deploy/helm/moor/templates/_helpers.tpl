{{/* The name of every object of the release: the release name, or RELEASE-moor. */}}
{{- define "moor.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "moor.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "moor.labels" -}}
{{ include "moor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The service's in-cluster DNS name. */}}
{{- define "moor.serviceHost" -}}
{{ include "moor.fullname" . }}.{{ .Release.Namespace }}.svc
{{- end -}}

{{/* HOST:PORT that pull specs name. */}}
{{- define "moor.registryHostname" -}}
{{- if .Values.registry.hostname -}}
{{ .Values.registry.hostname }}
{{- else -}}
{{ include "moor.serviceHost" . }}:{{ .Values.service.port }}
{{- end -}}
{{- end -}}

{{/* The Secret holding tls.crt and tls.key. */}}
{{- define "moor.tlsSecret" -}}
{{- if .Values.tls.existingSecret -}}
{{ .Values.tls.existingSecret }}
{{- else -}}
{{ include "moor.fullname" . }}-tls
{{- end -}}
{{- end -}}

{{/* How the API server and the aggregator trust moor: cert-manager's CA injection... */}}
{{- define "moor.caInjection" -}}
{{- if .Values.tls.certManager.enabled -}}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "moor.fullname" . }}-serving
{{- end -}}
{{- end -}}

{{/* ...or the caBundle given in values. */}}
{{- define "moor.caBundle" -}}
{{- if and (not .Values.tls.certManager.enabled) .Values.tls.caBundle -}}
caBundle: {{ .Values.tls.caBundle }}
{{- end -}}
{{- end -}}
