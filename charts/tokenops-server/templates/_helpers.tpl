{{- define "tokenops-server.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tokenops-server.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "tokenops-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tokenops-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tokenops-server.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "tokenops-server.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tokenops-server.claimName" -}}
{{- default (printf "%s-data" (include "tokenops-server.fullname" .)) .Values.database.sqlite.existingClaim }}
{{- end }}

{{/* Environment shared by the server and the bootstrap Job. */}}
{{- define "tokenops-server.env" -}}
{{- if eq .Values.database.type "postgres" }}
- name: TOKENOPS_DATABASE
  valueFrom:
    secretKeyRef:
      name: {{ required "database.postgres.existingSecret is required for database.type=postgres" .Values.database.postgres.existingSecret }}
      key: {{ .Values.database.postgres.key }}
{{- else }}
- name: TOKENOPS_DATABASE
  value: /var/lib/tokenops/tokenops.db
{{- end }}
{{- if .Values.policy }}
- name: TOKENOPS_CONFIG
  value: /etc/tokenops/policy.toml
{{- end }}
{{- end }}

{{- define "tokenops-server.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if eq .Values.database.type "sqlite" }}
- name: data
  mountPath: /var/lib/tokenops
{{- end }}
{{- if .Values.policy }}
- name: policy
  mountPath: /etc/tokenops
  readOnly: true
{{- end }}
{{- end }}

{{- define "tokenops-server.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if eq .Values.database.type "sqlite" }}
- name: data
  persistentVolumeClaim:
    claimName: {{ include "tokenops-server.claimName" . }}
{{- end }}
{{- if .Values.policy }}
- name: policy
  configMap:
    name: {{ include "tokenops-server.fullname" . }}-policy
{{- end }}
{{- end }}
