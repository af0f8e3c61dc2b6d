{{/*
Names are fixed (one release per namespace); these helpers give labels, the image and the
pieces every function's Service shares.
*/}}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "thumbnails.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels of one component. Call with (dict "ctx" $ "component" "upload").
*/}}
{{- define "thumbnails.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
All labels of one component's objects. Call with (dict "ctx" $ "component" "upload").
scripts/render_knative.py drops helm.sh/chart and app.kubernetes.io/managed-by.
*/}}
{{- define "thumbnails.labels" -}}
helm.sh/chart: {{ include "thumbnails.chart" .ctx }}
{{ include "thumbnails.selectorLabels" . }}
app.kubernetes.io/part-of: knative-thumbnails
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end -}}

{{/* The functions' image: repository@digest if a digest is given, else repository:tag. */}}
{{- define "thumbnails.image" -}}
{{- with .Values.image -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository (toString .tag) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Container hardening of the functions (uid 10001 is the image's user). Container level only:
Knative accepts a pod-level securityContext only behind a feature flag.
*/}}
{{- define "thumbnails.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* A full event type from a short one: "image.uploaded" -> "<prefix>.image.uploaded". */}}
{{- define "thumbnails.eventType" -}}
{{- printf "%s.%s" .ctx.Values.eventTypePrefix .type -}}
{{- end -}}

{{/* Where a secret value lives: the Secret's name and key. */}}
{{- define "thumbnails.redisUrlRef" -}}
{{- if and (not .Values.redis.enabled) .Values.redis.external.existingSecret -}}
name: {{ .Values.redis.external.existingSecret }}
key: {{ .Values.redis.external.existingSecretKey }}
{{- else -}}
name: thumbnails-secrets
key: REDIS_URL
{{- end -}}
{{- end -}}

{{- define "thumbnails.s3AccessKeyRef" -}}
{{- if .Values.minio.enabled -}}
name: {{ .Values.minio.existingSecret | default "thumbnails-secrets" }}
key: MINIO_ROOT_USER
{{- else -}}
name: {{ .Values.s3.existingSecret | required "s3.existingSecret is required when minio.enabled is false" }}
key: {{ .Values.s3.accessKeyKey }}
{{- end -}}
{{- end -}}

{{- define "thumbnails.s3SecretKeyRef" -}}
{{- if .Values.minio.enabled -}}
name: {{ .Values.minio.existingSecret | default "thumbnails-secrets" }}
key: MINIO_ROOT_PASSWORD
{{- else -}}
name: {{ .Values.s3.existingSecret | required "s3.existingSecret is required when minio.enabled is false" }}
key: {{ .Values.s3.secretKeyKey }}
{{- end -}}
{{- end -}}

{{/* True (non-empty) when the functions need an API key. */}}
{{- define "thumbnails.apiKeysOn" -}}
{{- if or .Values.apiKeys.existingSecret .Values.apiKeys.hashes -}}true{{- end -}}
{{- end -}}

{{- define "thumbnails.apiKeyHashesRef" -}}
{{- if .Values.apiKeys.existingSecret -}}
name: {{ .Values.apiKeys.existingSecret }}
key: {{ .Values.apiKeys.existingSecretKey }}
{{- else -}}
name: thumbnails-secrets
key: API_KEY_HASHES
{{- end -}}
{{- end -}}

{{/*
The optional secret env vars: (env name, values block). Each is set from the block's
existingSecret/existingSecretKey, else from thumbnails-secrets when the block's value is set.
*/}}
{{- define "thumbnails.optionalSecrets" -}}
{{- $blocks := list (list "WEBHOOK_SECRET" .Values.webhooks "secret") (list "BUCKET_NOTIFY_TOKEN" .Values.bucketNotifications "token") (list "LINK_SIGNING_KEY" .Values.signedLinks "key") -}}
{{- range $blocks }}
{{- $env := index . 0 }}{{- $block := index . 1 }}{{- $field := index . 2 }}
{{- if or $block.existingSecret (get $block $field) }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $block.existingSecret | default "thumbnails-secrets" }}
      key: {{ ternary $block.existingSecretKey $env (not (empty $block.existingSecret)) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Checks of combinations the schema cannot express; fails the render with a message. */}}
{{- define "thumbnails.validate" -}}
{{- if and (not .Values.redis.enabled) (not .Values.redis.external.url) (not .Values.redis.external.existingSecret) -}}
{{- fail "redis.enabled is false: set redis.external.url or redis.external.existingSecret" -}}
{{- end -}}
{{- if and .Values.webhooks.allowedHosts (not (or .Values.webhooks.secret .Values.webhooks.existingSecret)) -}}
{{- fail "webhooks.allowedHosts is set: set webhooks.secret or webhooks.existingSecret" -}}
{{- end -}}
{{- if and (not .Values.minio.enabled) (not .Values.s3.endpoint) -}}
{{- fail "minio.enabled is false: set s3.endpoint (host:port) and s3.existingSecret" -}}
{{- end -}}
{{- range $fn := list "upload" "status" "resize" -}}
{{- $v := index $.Values $fn -}}
{{- if and (gt (int $v.maxScale) 0) (gt (int $v.minScale) (int $v.maxScale)) -}}
{{- fail (printf "%s.minScale must not exceed %s.maxScale" $fn $fn) -}}
{{- end -}}
{{- /* Knative's ValidateContainerConcurrency: at most container-concurrency-max-limit. */ -}}
{{- if gt (mul (int $v.workers) (int $v.threads)) 1000 -}}
{{- fail (printf "%s.workers x %s.threads (its containerConcurrency) must be at most 1000" $fn $fn) -}}
{{- end -}}
{{- /* Knative's validateScaleDownDelay: at most 1h (the schema allows whole h/m/s only). */ -}}
{{- with $v.scaleDownDelay -}}
{{- $h := regexFind "[0-9]+h" . | trimSuffix "h" | default "0" | atoi -}}
{{- $m := regexFind "[0-9]+m" . | trimSuffix "m" | default "0" | atoi -}}
{{- $s := regexFind "[0-9]+s" . | trimSuffix "s" | default "0" | atoi -}}
{{- if gt (add (mul $h 3600) (mul $m 60) $s) 3600 -}}
{{- fail (printf "%s.scaleDownDelay %s is longer than Knative's maximum, 1h" $fn .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
resize's memory in Mi: every image in flight (workers x threads) may hold its decoded RGBA
pixels twice, plus a base per worker. See resize.baseMemoryMi in values.yaml.
*/}}
{{- define "thumbnails.resizeMemory" -}}
{{- $mi := 1048576 -}}
{{- $perImage := div (add (mul (int64 .Values.limits.maxPixels) 8) (sub $mi 1)) $mi -}}
{{- $inFlight := mul (int .Values.resize.workers) (int .Values.resize.threads) -}}
{{- printf "%dMi" (add (mul $inFlight $perImage) (mul (int .Values.resize.workers) (int .Values.resize.baseMemoryMi))) -}}
{{- end -}}

{{/*
The resources of a function's container; resize gets its computed memory where the values
give none. Call with (dict "ctx" $ "name" "resize").
*/}}
{{- define "thumbnails.resources" -}}
{{- $v := index .ctx.Values .name -}}
{{- $res := deepCopy ($v.resources | default dict) -}}
{{- if eq .name "resize" -}}
{{- $memory := include "thumbnails.resizeMemory" .ctx -}}
{{- range $kind := list "requests" "limits" -}}
{{- $section := get $res $kind | default dict -}}
{{- if not (hasKey $section "memory") -}}
{{- $_ := set $section "memory" $memory -}}
{{- end -}}
{{- $_ := set $res $kind $section -}}
{{- end -}}
{{- end -}}
{{- toYaml $res -}}
{{- end -}}

{{/*
Checksum of the functions' configuration, as a template annotation: Knative makes a new
Revision (and so restarts the pods) only when the template changes, not when a ConfigMap or
Secret it reads does.
*/}}
{{- define "thumbnails.configChecksum" -}}
{{- $config := include (print .Template.BasePath "/configmap.yaml") . -}}
{{- $secret := include (print .Template.BasePath "/secret.yaml") . -}}
{{- print $config $secret | sha256sum -}}
{{- end -}}

{{/*
A function's Knative Service. Call with (dict "ctx" $ "name" "upload").
*/}}
{{- define "thumbnails.function" -}}
{{- $ := .ctx -}}
{{- $name := .name -}}
{{- $v := index $.Values $name -}}
{{- $labels := dict "ctx" $ "component" $name -}}
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "thumbnails.labels" $labels | nindent 4 }}
    {{- if $v.clusterLocal }}
    networking.knative.dev/visibility: cluster-local
    {{- end }}
spec:
  template:
    metadata:
      labels:
        {{- include "thumbnails.selectorLabels" $labels | nindent 8 }}
      annotations:
        autoscaling.knative.dev/min-scale: {{ $v.minScale | toString | quote }}
        autoscaling.knative.dev/max-scale: {{ $v.maxScale | toString | quote }}
        {{- with $v.scaleDownDelay }}
        autoscaling.knative.dev/scale-down-delay: {{ . | quote }}
        {{- end }}
        checksum/config: {{ include "thumbnails.configChecksum" $ | quote }}
        # GET /metrics on the container port: Prometheus scrapes the pod itself, past the
        # queue-proxy, so a scrape is no traffic to Knative (resize still scales to zero).
        prometheus.io/scrape: "true"
        prometheus.io/port: "8080"
        prometheus.io/path: /metrics
    spec:
      containerConcurrency: {{ mul (int $v.workers) (add (int $v.threads) (int ($v.waitingSlots | default 0))) }}
      timeoutSeconds: {{ $v.timeoutSeconds }}
      {{- with $v.responseStartTimeoutSeconds }}
      responseStartTimeoutSeconds: {{ . }}
      {{- end }}
      {{- with $.Values.image.pullSecrets }}
      imagePullSecrets:
        {{- range . }}
        - name: {{ . }}
        {{- end }}
      {{- end }}
      containers:
        - name: {{ $name }}
          image: {{ include "thumbnails.image" $ | quote }}
          imagePullPolicy: {{ $.Values.image.pullPolicy }}
          args:
            - serve
            - {{ $name }}
            - --workers
            - {{ $v.workers | toString | quote }}
            - --threads
            - {{ $v.threads | toString | quote }}
          ports:
            - name: http1
              containerPort: 8080
          envFrom:
            - configMapRef:
                name: thumbnails-config
          env:
            - name: REDIS_URL
              valueFrom:
                secretKeyRef:
                  {{- include "thumbnails.redisUrlRef" $ | nindent 18 }}
            - name: S3_ACCESS_KEY
              valueFrom:
                secretKeyRef:
                  {{- include "thumbnails.s3AccessKeyRef" $ | nindent 18 }}
            - name: S3_SECRET_KEY
              valueFrom:
                secretKeyRef:
                  {{- include "thumbnails.s3SecretKeyRef" $ | nindent 18 }}
            {{- if include "thumbnails.apiKeysOn" $ }}
            - name: API_KEY_HASHES
              valueFrom:
                secretKeyRef:
                  {{- include "thumbnails.apiKeyHashesRef" $ | nindent 18 }}
            {{- end }}
            {{- with include "thumbnails.optionalSecrets" $ | trim }}
            {{- . | nindent 12 }}
            {{- end }}
          # No periodSeconds: until the first success the queue-proxy probes aggressively,
          # which shortens cold starts. With periodSeconds 0 Knative refuses timeoutSeconds
          # and failureThreshold ("... is disallowed when periodSeconds is zero":
          # validateReadinessProbe, pkg/apis/serving/k8s_validation.go, Serving 1.23), and
          # its defaulting webhook fills them in only when periodSeconds is set
          # (applyReadinessProbeDefaults, pkg/apis/serving/v1/revision_defaults.go).
          # /ready checks Redis and the object store.
          readinessProbe:
            httpGet:
              path: /ready
          livenessProbe:
            httpGet:
              path: /health
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          resources:
            {{- include "thumbnails.resources" . | nindent 12 }}
          securityContext:
            {{- include "thumbnails.containerSecurityContext" $ | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir: {}
{{- end -}}

{{/*
A complete delivery block (a Trigger's replaces the Broker's whole). Call with
(dict "delivery" .Values.resize.delivery "deadLetterSink" $sink); the sink may be empty.
*/}}
{{- define "thumbnails.delivery" -}}
retry: {{ .delivery.retry }}
backoffPolicy: {{ .delivery.backoffPolicy }}
backoffDelay: {{ .delivery.backoffDelay }}
timeout: {{ .delivery.timeout }}
{{- with .deadLetterSink }}
deadLetterSink:
  {{- with .ref }}
  ref:
    apiVersion: {{ .apiVersion }}
    kind: {{ .kind }}
    name: {{ .name }}
    {{- with .namespace }}
    namespace: {{ . }}
    {{- end }}
  {{- end }}
  {{- with .uri }}
  uri: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}
