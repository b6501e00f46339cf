{{/* Names, labels and the secret-file wiring shared by the templates. */}}

{{- define "osctl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "osctl.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "osctl.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Kubernetes recommended labels. */}}
{{- define "osctl.labels" -}}
helm.sh/chart: {{ include "osctl.chart" . }}
{{ include "osctl.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: server
app.kubernetes.io/part-of: osctl
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "osctl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "osctl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "osctl.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "osctl.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "osctl.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Where mounted secrets live in the container. */}}
{{- define "osctl.secretsDir" -}}/etc/osctl/secrets{{- end -}}
{{- define "osctl.stateDir" -}}/var/lib/osctl{{- end -}}

{{/*
The secret files, as a list of {env, secret, key, path}: one entry per *_FILE variable. The
projected volume and the env block are both built from it, so they cannot disagree.
*/}}
{{- define "osctl.secretFiles" -}}
{{- $files := list -}}
{{- if .Values.state.existingSecret -}}
{{- $files = append $files (dict "env" "OSCTL_STATE_URL_FILE" "secret" .Values.state.existingSecret "key" .Values.state.key "path" "state-url") -}}
{{- end -}}
{{- if .Values.auth.existingSecret -}}
{{- $files = append $files (dict "env" "OSCTL_API_TOKENS_FILE" "secret" .Values.auth.existingSecret "key" .Values.auth.key "path" "api-tokens") -}}
{{- end -}}
{{- $seen := dict -}}
{{- range .Values.targets -}}
{{- if hasKey $seen .name -}}
{{- fail (printf "targets: duplicate target name %q" .name) -}}
{{- end -}}
{{- $_ := set $seen .name true -}}
{{- $env := printf "OSCTL_TARGET_%s_FILE" (.name | upper | replace "-" "_") -}}
{{- $files = append $files (dict "env" $env "secret" .existingSecret "key" (default "dsn" .key) "path" (printf "targets/%s" .name)) -}}
{{- end -}}
{{- with .Values.slack -}}
{{- if .existingSecret -}}
{{- if not (or .botTokenKey .webhookUrlKey) -}}
{{- fail "slack: existingSecret is set but both botTokenKey and webhookUrlKey are empty" -}}
{{- end -}}
{{- if .botTokenKey -}}
{{- $files = append $files (dict "env" "OSCTL_SLACK_BOT_TOKEN_FILE" "secret" .existingSecret "key" .botTokenKey "path" "slack/bot-token") -}}
{{- end -}}
{{- if .webhookUrlKey -}}
{{- $files = append $files (dict "env" "OSCTL_SLACK_WEBHOOK_URL_FILE" "secret" .existingSecret "key" .webhookUrlKey "path" "slack/webhook-url") -}}
{{- end -}}
{{- if .signingSecretKey -}}
{{- $files = append $files (dict "env" "OSCTL_SLACK_SIGNING_SECRET_FILE" "secret" .existingSecret "key" .signingSecretKey "path" "slack/signing-secret") -}}
{{- end -}}
{{- if .usersKey -}}
{{- $files = append $files (dict "env" "OSCTL_SLACK_USERS_FILE" "secret" .existingSecret "key" .usersKey "path" "slack/users") -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson (dict "files" $files) -}}
{{- end -}}

{{/* The distinct Secret names the release reads, sorted. */}}
{{- define "osctl.secretNames" -}}
{{- $names := list -}}
{{- range (include "osctl.secretFiles" . | fromJson).files -}}
{{- $names = append $names .secret -}}
{{- end -}}
{{- toJson (dict "names" ($names | uniq | sortAlpha)) -}}
{{- end -}}
