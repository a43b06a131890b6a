{{/*
The chart's name, or nameOverride.
*/}}
{{- define "sqc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified name of the release's objects (63 characters at most, a DNS label):
fullnameOverride, or the release name when it already contains the chart's name, or both.
*/}}
{{- define "sqc.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "sqc.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: what identifies this release's pods.
*/}}
{{- define "sqc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sqc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Kubernetes' recommended labels, on every object.
*/}}
{{- define "sqc.labels" -}}
helm.sh/chart: {{ include "sqc.chart" . }}
{{ include "sqc.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sales-quantity-classifier
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "sqc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sqc.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Names of the settings ConfigMap and the data claim.
*/}}
{{- define "sqc.configMapName" -}}
{{- printf "%s-config" (include "sqc.fullname" .) }}
{{- end }}
{{- define "sqc.claimName" -}}
{{- default (printf "%s-data" (include "sqc.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}
{{- define "sqc.objectStoreSecretName" -}}
{{- default (printf "%s-s3" (include "sqc.fullname" .)) .Values.objectStore.credentialsSecret }}
{{- end }}

{{/*
Where a pod's locations are (call with a list of them): "true" when one is a path, so on the
data claim (sqc.onClaim), or on S3 (sqc.onS3); empty otherwise.
*/}}
{{- define "sqc.onClaim" -}}
{{- range . }}{{ if not (contains "://" .) }}true{{ end }}{{ end }}
{{- end }}
{{- define "sqc.onS3" -}}
{{- range . }}{{ if hasPrefix "s3://" . }}true{{ end }}{{ end }}
{{- end }}

{{/*
Every location some pod of the release uses: the claim exists when one of them is a path.
*/}}
{{- define "sqc.allLocations" -}}
{{- $m := .Values.monitoring }}
{{- $jobs := or $m.drift.enabled $m.performance.enabled }}
{{- $all := list }}
{{- if or .Values.capture.enabled $jobs }}{{ $all = append $all .Values.capture.uri }}{{ end }}
{{- if $jobs }}{{ $all = append $all $m.reportsUri }}{{ end }}
{{- if $m.performance.enabled }}{{ $all = append $all $m.performance.labelsUri }}{{ end }}
{{- $all = concat $all (include "sqc.rolloutLocations" . | fromJsonArray) }}
{{- toJson $all }}
{{- end }}

{{/*
The object store's settings, as the AWS SDK reads them: endpoint and region from the
ConfigMap (when set), the keys from the Secret (optional: a workload identity needs none).
*/}}
{{- define "sqc.objectStoreEnv" -}}
{{- if .Values.objectStore.endpoint }}
- name: AWS_ENDPOINT_URL
  valueFrom:
    configMapKeyRef:
      name: {{ include "sqc.configMapName" . }}
      key: AWS_ENDPOINT_URL
{{- end }}
{{- if .Values.objectStore.region }}
- name: AWS_REGION
  valueFrom:
    configMapKeyRef:
      name: {{ include "sqc.configMapName" . }}
      key: AWS_REGION
{{- end }}
{{- range list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" "AWS_SESSION_TOKEN" }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ include "sqc.objectStoreSecretName" $ }}
      key: {{ . }}
      optional: true
{{- end }}
{{- end }}

{{/*
An image reference: image.registry (shared by the three images) / the component's repository,
then its digest when set, else its tag or, empty, image.tag (shared).
Call with (dict "image" .Values.predictor.image "shared" .Values.image).
*/}}
{{- define "sqc.image" -}}
{{- $repository := .image.repository }}
{{- with .shared.registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}
{{- end }}
{{- if .image.digest }}
{{- printf "%s@%s" $repository .image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .shared.tag .image.tag) }}
{{- end }}
{{- end }}

{{/*
The Pod Security Standard "restricted" settings: pod level, then container level.
*/}}
{{- define "sqc.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end }}
{{- define "sqc.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
The MLflow credentials from mlflow.credentialsSecret, when one is named: required references,
so that a missing or misnamed Secret stops the pod at once (CreateContainerConfigError, an
event naming the Secret) instead of letting it start without credentials. Nothing when none is
named (an MLflow without auth).
*/}}
{{- define "sqc.mlflowCredentialsEnv" -}}
{{- with .Values.mlflow.credentialsSecret }}
- name: MLFLOW_TRACKING_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: MLFLOW_TRACKING_USERNAME
- name: MLFLOW_TRACKING_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: MLFLOW_TRACKING_PASSWORD
{{- end }}
{{- end }}

{{/*
The predictor's container, serving modelUri. Call with (dict "root" $ "modelUri" URI).
*/}}
{{- define "sqc.predictorContainer" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
- name: kserve-container
  image: {{ include "sqc.image" (dict "image" $v.predictor.image "shared" $v.image) }}
  imagePullPolicy: {{ $v.predictor.image.pullPolicy }}
  env:
    - name: PREDICTOR_BIND_HOST
      value: 0.0.0.0
    - name: PREDICTOR_MODEL_NAME
      value: {{ $v.modelName }}
    - name: PREDICTOR_MODEL_URI
      value: {{ .modelUri }}
    - name: PREDICTOR_SHUTDOWN_DELAY_SECONDS
      value: {{ include "sqc.shutdownDelay" $root | quote }}
    - name: PREDICTOR_SHUTDOWN_GRACE_SECONDS
      value: {{ $v.shutdown.graceSeconds | quote }}
    - name: PREDICTOR_TRACKING_URI
      valueFrom:
        configMapKeyRef:
          name: {{ include "sqc.configMapName" $root }}
          key: MLFLOW_TRACKING_URI
    {{- include "sqc.mlflowCredentialsEnv" $root | nindent 4 }}
    {{- range $name, $value := $v.predictor.env }}
    - name: {{ $name }}
      value: {{ $value | quote }}
    {{- end }}
    {{- with $v.predictor.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.predictor.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - name: http1
      containerPort: 8080
      protocol: TCP
  startupProbe:
    httpGet:
      path: /v2/health/live
      port: 8080
    periodSeconds: 5
    failureThreshold: {{ $v.predictor.startupFailureThreshold }}
  readinessProbe:
    httpGet:
      path: /v2/models/{{ $v.modelName }}/ready
      port: 8080
    periodSeconds: 5
    failureThreshold: 3
  livenessProbe:
    httpGet:
      path: /v2/health/live
      port: 8080
    periodSeconds: 10
    failureThreshold: 3
  resources:
    {{- toYaml $v.predictor.resources | nindent 4 }}
  securityContext:
    {{- include "sqc.containerSecurityContext" $root | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end }}

{{/*
The registry URI the stable predictor serves, and the jobs judge: a pinned version, or the
alias when followAlias asks for it. One of the two is required.
*/}}
{{- define "sqc.stableModelUri" -}}
{{- $p := .Values.predictor }}
{{- if and $p.followAlias (not (kindIs "invalid" $p.modelVersion)) }}
{{- fail "predictor.modelVersion and predictor.followAlias are both set: pin a version, or follow an alias, not both" }}
{{- else if $p.followAlias }}
{{- printf "models:/%s@%s" .Values.registeredModel $p.followAlias }}
{{- else if not (kindIs "invalid" $p.modelVersion) }}
{{- printf "models:/%s/%d" .Values.registeredModel (int $p.modelVersion) }}
{{- else }}
{{- fail "predictor.modelVersion is required: the registry version to serve (e.g. --set predictor.modelVersion=3; `make release` resolves it from the alias), so that every pod serves the same version; or, on purpose, --set predictor.followAlias=production" }}
{{- end }}
{{- end }}

{{/*
The registry URI a canary serves: one pinned version of the registered model.
*/}}
{{- define "sqc.canaryModelUri" -}}
{{- printf "models:/%s/%d" .Values.registeredModel (int .Values.canary.modelVersion) }}
{{- end }}

{{/*
The autoscaling metric of a component: the value given, or the mode's natural one.
*/}}
{{- define "sqc.scaleMetric" -}}
{{- if .component.scaleMetric }}
{{- .component.scaleMetric }}
{{- else if eq .mode "Knative" }}
{{- "concurrency" }}
{{- else }}
{{- "cpu" }}
{{- end }}
{{- end }}

{{/*
The autoscaling target of a component: the value given, or 70 (% CPU) in Standard mode and
16 (requests in flight per replica) in Knative mode.
*/}}
{{- define "sqc.scaleTarget" -}}
{{- if .component.scaleTarget }}
{{- .component.scaleTarget }}
{{- else if eq .mode "Knative" }}
{{- 16 }}
{{- else }}
{{- 70 }}
{{- end }}
{{- end }}

{{/*
A monitoring CronJob; the drift and performance jobs share it.
Call with (dict "root" $ "job" "drift" "args" LIST "schedule" CRON "locations" LIST): the
locations it reads and writes decide whether it mounts the data claim and gets S3's settings.
*/}}
{{- define "sqc.cronJob" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $m := $v.monitoring }}
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ include "sqc.fullname" $root }}-{{ .job }}
  namespace: {{ $root.Release.Namespace }}
  annotations:
    checkov.io/skip1: CKV_K8S_15=Images are pinned by tag or digest, so IfNotPresent pulls exactly the pinned image
    checkov.io/skip2: CKV_K8S_35=MLflow's client reads its credentials only from environment variables
    checkov.io/skip3: CKV_K8S_40=The images run as the numeric non-root user 1000 that the images fix
    checkov.io/skip4: CKV_K8S_43=Tags are pinned; set the image digest in an overlay or the chart's values
  labels:
    {{- include "sqc.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .job }}
spec:
  schedule: {{ .schedule | quote }}
  {{- with $m.timeZone }}
  timeZone: {{ . | quote }}
  {{- end }}
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: {{ $m.startingDeadlineSeconds }}
  successfulJobsHistoryLimit: {{ $m.successfulJobsHistoryLimit }}
  failedJobsHistoryLimit: {{ $m.failedJobsHistoryLimit }}
  jobTemplate:
    spec:
      backoffLimit: {{ $m.backoffLimit }}
      activeDeadlineSeconds: {{ $m.activeDeadlineSeconds }}
      ttlSecondsAfterFinished: {{ $m.ttlSecondsAfterFinished }}
      template:
        metadata:
          labels:
            {{- include "sqc.labels" $root | nindent 12 }}
            app.kubernetes.io/component: {{ .job }}
        spec:
          restartPolicy: Never
          serviceAccountName: {{ include "sqc.serviceAccountName" $root }}
          automountServiceAccountToken: false
          {{- with $v.imagePullSecrets }}
          imagePullSecrets:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- include "sqc.podSecurityContext" $root | nindent 12 }}
          containers:
            - name: {{ .job }}
              image: {{ include "sqc.image" (dict "image" $m.image "shared" $v.image) }}
              imagePullPolicy: {{ $m.image.pullPolicy }}
              command:
                - python
                - -m
                - monitoring
              args:
                {{- toYaml .args | nindent 16 }}
              env:
                - name: MONITORING_TRACKING_URI
                  valueFrom:
                    configMapKeyRef:
                      name: {{ include "sqc.configMapName" $root }}
                      key: MLFLOW_TRACKING_URI
                - name: MONITORING_PUSHGATEWAY
                  valueFrom:
                    configMapKeyRef:
                      name: {{ include "sqc.configMapName" $root }}
                      key: PUSHGATEWAY_URL
                      optional: true
                {{- include "sqc.mlflowCredentialsEnv" $root | nindent 16 }}
                {{- with $m.alertWebhookSecret }}
                - name: MONITORING_ALERT_WEBHOOK
                  valueFrom:
                    secretKeyRef:
                      name: {{ . }}
                      key: ALERT_WEBHOOK_URL
                {{- end }}
                {{- if $m.logToMlflow }}
                - name: MONITORING_LOG_TO_MLFLOW
                  value: "true"
                {{- end }}
                {{- if include "sqc.onS3" .locations }}
                {{- include "sqc.objectStoreEnv" $root | nindent 16 }}
                {{- end }}
                {{- with $m.extraEnv }}
                {{- toYaml . | nindent 16 }}
                {{- end }}
              {{- with $m.envFrom }}
              envFrom:
                {{- toYaml . | nindent 16 }}
              {{- end }}
              resources:
                {{- toYaml $m.resources | nindent 16 }}
              securityContext:
                {{- include "sqc.containerSecurityContext" $root | nindent 16 }}
              volumeMounts:
                {{- if include "sqc.onClaim" .locations }}
                - name: data
                  mountPath: /data
                {{- end }}
                - name: tmp
                  mountPath: /tmp
          volumes:
            {{- if include "sqc.onClaim" .locations }}
            - name: data
              persistentVolumeClaim:
                claimName: {{ include "sqc.claimName" $root }}
            {{- end }}
            - name: tmp
              emptyDir:
                sizeLimit: 512Mi
{{- end }}

{{/*
Shutdown, per mode. Standard mode: SIGTERM comes at once; the server serves `delay` more
(readiness failing), gives requests in flight `grace`, then the transformer flushes its
captures: all within terminationGracePeriodSeconds. Knative mode: Knative gives the container a
preStop hook that waits for the queue-proxy's drain, at least 30 s without a request
(knative/serving pkg/reconciler/revision/resources/deploy.go, userLifecycle, and
pkg/queue/sharedmain: drainSleepDuration), and sets the grace to the revision timeout
(BuildPodSpec: TerminationGracePeriodSeconds = TimeoutSeconds); SIGTERM comes only after the
hook, and the kubelet kills 2 s after the grace. Nothing new arrives after the drain, so no
delay is needed there, and the timeout must cover the drain as well.
*/}}
{{- define "sqc.knativeDrainSeconds" -}}30{{- end }}
{{- define "sqc.captureFlushSeconds" -}}5{{- end }}
{{- define "sqc.shutdownDelay" -}}
{{- $s := .Values.shutdown }}
{{- if kindIs "invalid" $s.delaySeconds }}
{{- ternary 0 5 (eq .Values.deploymentMode "Knative") }}
{{- else }}
{{- $s.delaySeconds }}
{{- end }}
{{- end }}
{{- define "sqc.terminationGraceSeconds" -}}
{{- $s := .Values.shutdown }}
{{- if kindIs "invalid" $s.terminationGracePeriodSeconds }}
{{- ternary 60 35 (eq .Values.deploymentMode "Knative") }}
{{- else }}
{{- $s.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
The pods' termination grace, after checking that the shutdown fits in it: Standard mode sets
terminationGracePeriodSeconds; Knative refuses that field and takes it from the revision's
timeout (KServe's `timeout`, ksvc_reconciler.go: TimeoutSeconds).
*/}}
{{- define "sqc.terminationGrace" -}}
{{- $knative := eq .Values.deploymentMode "Knative" }}
{{- $period := include "sqc.terminationGraceSeconds" . | float64 }}
{{- $sigterm := ternary (include "sqc.knativeDrainSeconds" . | float64) 0.0 $knative }}
{{- $delay := include "sqc.shutdownDelay" . | float64 }}
{{- $flush := include "sqc.captureFlushSeconds" . | float64 }}
{{- $done := addf $sigterm $delay .Values.shutdown.graceSeconds $flush }}
{{- if ge $done $period }}
{{- if $knative }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (the revision timeout in Knative mode) must exceed the queue-proxy's 30 s drain + shutdown.delaySeconds + shutdown.graceSeconds + 5 s of capture flush = %v s" $done) }}
{{- else }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds must exceed shutdown.delaySeconds + shutdown.graceSeconds + 5 s of capture flush = %v s" $done) }}
{{- end }}
{{- end }}
{{- if $knative -}}
timeout: {{ $period | int }}
{{- else -}}
terminationGracePeriodSeconds: {{ $period | int }}
{{- end }}
{{- end }}

{{/*
Scrape annotations of the predictor's and transformer's pods (prometheus.scrapeAnnotations).
KServe's pod webhook (pkg/webhook/admission/pod/metrics_aggregate_injector.go,
InjectMetricsAggregator) reads serving.kserve.io/enable-prometheus-scraping: when "true" it sets
prometheus.io/port to 9088 (the queue-proxy's aggregate of its own and the kserve-container's
metrics) if serving.kserve.io/enable-metric-aggregation is "true", else to 9091 (the
queue-proxy's own metrics only), and prometheus.io/path to /metrics; it never sets
prometheus.io/scrape. So: Knative mode with aggregation lets KServe point at 9088 (needs
KServe's qpext queue-proxy image); otherwise the annotations point at the kserve-container's
8080 themselves and turn KServe's off, so that a cluster default of "true" cannot move the port
to a 9091 no container serves in Standard mode.
*/}}
{{- define "sqc.scrapeAnnotations" -}}
{{- $s := .Values.prometheus.scrapeAnnotations }}
{{- if $s.enabled }}
{{- if and (eq .Values.deploymentMode "Knative") $s.knativeMetricAggregation }}
serving.kserve.io/enable-prometheus-scraping: "true"
serving.kserve.io/enable-metric-aggregation: "true"
prometheus.io/scrape: "true"
{{- else }}
serving.kserve.io/enable-prometheus-scraping: "false"
serving.kserve.io/enable-metric-aggregation: "false"
prometheus.io/scrape: "true"
prometheus.io/port: "8080"
prometheus.io/path: /metrics
{{- end }}
{{- end }}
{{- end }}

{{/*
The ports Prometheus scrapes on the predictor's pods (for its NetworkPolicy): the
kserve-container's 8080, and the queue-proxy's aggregate 9088 when KServe's annotations point there.
*/}}
{{- define "sqc.metricsPorts" -}}
- protocol: TCP
  port: 8080
{{- $s := .Values.prometheus.scrapeAnnotations }}
{{- if and $s.enabled $s.knativeMetricAggregation (eq .Values.deploymentMode "Knative") }}
- protocol: TCP
  port: 9088
{{- end }}
{{- end }}

{{/*
The rollout Job's objects (ServiceAccount, Role, RoleBinding, ConfigMap, Job) share one name.
*/}}
{{- define "sqc.rolloutName" -}}
{{- printf "%s-rollout" (include "sqc.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The rollout Job's deadline: rollout.job.activeDeadlineSeconds, or the longest a run can take
(rollout/progressive.py and rollout/actions.py). Each step below 100 % makes a move that waits
up to `timeout` twice (start: the stable revision rolled out, then the split reported; shift:
the canary's revision ready, then the split), then analyses for `interval` and, without
enough traffic or after a failed check, again until `maxWait` is spent (one more interval at
most), with 120 s for Prometheus' answers (10 s a query). Then promote or roll back waits up
to `timeout` once more; 300 s cover the image pull, the start and MLflow.
*/}}
{{- define "sqc.rolloutDeadline" -}}
{{- $j := .Values.rollout.job }}
{{- if not (kindIs "invalid" $j.activeDeadlineSeconds) }}
{{- $j.activeDeadlineSeconds }}
{{- else }}
{{- $analysed := 0 }}
{{- range $j.steps }}{{ if lt (int .) 100 }}{{ $analysed = add1 $analysed }}{{ end }}{{ end }}
{{- $step := add (mul 2 $j.timeout) $j.maxWait (mul 2 $j.interval) 120 }}
{{- add (mul $analysed $step) $j.timeout 300 }}
{{- end }}
{{- end }}

{{/*
The rollout Job's arguments: `python -m rollout` + these (rollout/__main__.py, _run_parser).
The checks of what the CLI would refuse come first, so `helm install` says it, not the Job.
*/}}
{{- define "sqc.rolloutArgs" -}}
{{- $j := .Values.rollout.job }}
{{- if kindIs "invalid" $j.version }}
{{- fail "rollout.job.version is required: the registry version to roll out (e.g. --set rollout.job.version=4)" }}
{{- end }}
{{- if not $j.prometheusUrl }}
{{- fail "rollout.job.prometheusUrl is required: the Prometheus that scrapes the predictors' per-version metrics (e.g. --set rollout.job.prometheusUrl=http://prometheus-operated.monitoring.svc:9090)" }}
{{- end }}
{{- if ne .Values.deploymentMode "Knative" }}
{{- fail "rollout.job.enabled needs deploymentMode=Knative: a rollout moves a canary (canaryTrafficPercent), and KServe's webhook refuses a Standard-mode canary for a predictor without a storage URI, as this one is (see canary.enabled)" }}
{{- end }}
{{- $previous := 0 }}
{{- range $j.steps }}
{{- if le (int .) $previous }}
{{- fail (printf "rollout.job.steps=%v is invalid: expected increasing percentages from 1 to 100, e.g. [10, 25, 50, 100]" $j.steps) }}
{{- end }}
{{- $previous = int . }}
{{- end }}
{{- if eq (int (first $j.steps)) 100 }}
{{- fail "rollout.job.steps=[100] is invalid: at least one step below 100 % is analysed" }}
{{- end }}
{{- $args := list "run" (toString (int $j.version)) "--name" (include "sqc.fullname" .) }}
{{- $args = concat $args (list "--steps" (join "," $j.steps) "--interval" (toString $j.interval) "--max_wait" (toString $j.maxWait)) }}
{{- $args = concat $args (list "--failure_limit" (toString $j.failureLimit) "--timeout" (toString $j.timeout)) }}
{{- $args = concat $args (list "--prometheus" $j.prometheusUrl "--analysis" "/etc/rollout/analysis.yaml") }}
{{- $args = concat $args (list "--kubeconfig" "/etc/rollout/kubeconfig" "--report" "/dev/stdout") }}
{{- with $j.selector }}
{{- $args = concat $args (list "--selector" .) }}
{{- end }}
{{- if $j.accuracy }}
{{- if not .Values.capture.enabled }}
{{- fail "rollout.job.accuracy needs capture.enabled: the accuracy check joins the labels to the rows the transformer captures" }}
{{- end }}
{{- $args = concat $args (list "--labels" .Values.monitoring.performance.labelsUri "--current" .Values.capture.uri) }}
{{- end }}
{{- if $j.logToMlflow }}
{{- $args = append $args "--log_to_mlflow" }}
{{- end }}
{{- toYaml $args }}
{{- end }}

{{/*
What the rollout Job reads besides the cluster, Prometheus and MLflow: with rollout.job.accuracy,
the captured rows and the labels (a JSON list, for sqc.onClaim and sqc.onS3).
*/}}
{{- define "sqc.rolloutLocations" -}}
{{- $j := .Values.rollout.job }}
{{- if and $j.enabled $j.accuracy }}
{{- list .Values.capture.uri .Values.monitoring.performance.labelsUri | toJson }}
{{- else }}
{{- list | toJson }}
{{- end }}
{{- end }}
