{{/* Names, labels, the rendered configuration and the pod template shared by every service. */}}

{{- define "switchboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "switchboard.fullname" -}}
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

{{- define "switchboard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "switchboard.labels" -}}
helm.sh/chart: {{ include "switchboard.chart" . }}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: switchboard
{{- end }}

{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component. Call with (dict "root" $ "component" "transformer"). */}}
{{- define "switchboard.componentLabels" -}}
{{ include "switchboard.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "switchboard.componentSelector" -}}
{{ include "switchboard.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "switchboard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "switchboard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "switchboard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Target connections served by sinks, one Deployment each. */}}
{{- define "switchboard.sinkConnections" -}}
{{- $names := list }}
{{- if .Values.sink.connections }}
{{- $names = .Values.sink.connections }}
{{- else }}
{{- range (.Values.config.flows | default list) }}
{{- range (.sinks | default list) }}
{{- $names = append $names (first (splitList "." .target)) }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson (uniq $names) }}
{{- end }}

{{/* The most replicas a Kafka consumer Deployment may have: one per partition. */}}
{{- define "switchboard.checkReplicas" -}}
{{- if gt (int .replicas) (int .root.Values.kafka.partitions) }}
{{- fail (printf "%s: %d replicas but kafka.partitions is %d; replicas beyond the partition count sit idle" .what (int .replicas) (int .root.Values.kafka.partitions)) }}
{{- end }}
{{- end }}

{{/* The configuration file every service reads (config.yaml in the ConfigMap). */}}
{{- define "switchboard.config" -}}
{{- $v := .Values }}
{{- $sec := $v.kafka.security }}
{{- $security := dict "protocol" $sec.protocol }}
{{- if has $sec.protocol (list "SASL_PLAINTEXT" "SASL_SSL") }}
{{- if not $sec.sasl.existingSecret }}{{ fail "kafka.security.sasl.existingSecret: name the Secret holding the Kafka password" }}{{ end }}
{{- if not $sec.sasl.username }}{{ fail "kafka.security.sasl.username: set the Kafka user" }}{{ end }}
{{- $_ := set $security "sasl" (dict "mechanism" $sec.sasl.mechanism "username" $sec.sasl.username "password" (printf "${file:/var/run/secrets/switchboard/kafka-sasl/%s}" $sec.sasl.passwordKey)) }}
{{- end }}
{{- if has $sec.protocol (list "SSL" "SASL_SSL") }}
{{- $tls := dict "verify_hostname" $sec.tls.verifyHostname }}
{{- if $sec.tls.caSecret }}
{{- $_ := set $tls "ca_file" (printf "/var/run/secrets/switchboard/kafka-ca/%s" $sec.tls.caKey) }}
{{- end }}
{{- if $sec.tls.clientCertSecret }}
{{- $_ := set $tls "cert_file" (printf "/var/run/secrets/switchboard/kafka-client/%s" $sec.tls.certKey) }}
{{- $_ := set $tls "key_file" (printf "/var/run/secrets/switchboard/kafka-client/%s" $sec.tls.keyKey) }}
{{- end }}
{{- $_ := set $security "tls" $tls }}
{{- end }}
{{- $kafka := dict "bootstrap_servers" $v.kafka.bootstrapServers "topic_prefix" $v.kafka.topicPrefix "partitions" (int $v.kafka.partitions) "replication_factor" (int $v.kafka.replicationFactor) "security" $security }}
{{- if $v.kafka.properties }}{{ $_ := set $kafka "properties" $v.kafka.properties }}{{ end }}
{{- $registry := dict "url" $v.registry.url }}
{{- if $v.registry.basicAuth.existingSecret }}
{{- $_ := set $registry "basic_auth" (dict "username" $v.registry.basicAuth.username "password" (printf "${file:/var/run/secrets/switchboard/registry/%s}" $v.registry.basicAuth.passwordKey)) }}
{{- end }}
{{- $config := deepCopy ($v.config | default dict) }}
{{- $_ := set $config "kafka" $kafka }}
{{- $_ := set $config "registry" $registry }}
{{- $_ := set $config "ingest" (merge (dict "listen" (printf "0.0.0.0:%d" (int $v.ingestWebhook.port))) (get $config "ingest" | default dict)) }}
{{- $_ := set $config "transformer" (merge (dict "admin_listen" (printf "0.0.0.0:%d" (int $v.transformer.port)) "mappings_dir" "/app/mappings" "schemas_dir" "/app/schemas") (get $config "transformer" | default dict)) }}
{{- $_ := set $config "sink" (merge (dict "admin_listen" (printf "0.0.0.0:%d" (int $v.sink.port)) "mappings_dir" "/app/mappings") (get $config "sink" | default dict)) }}
{{- $_ := set $config "poller" (merge (dict "admin_listen" (printf "0.0.0.0:%d" (int $v.ingestPoller.port))) (get $config "poller" | default dict)) }}
{{- if $v.console.enabled }}
{{- $console := deepCopy (get $config "console" | default dict) }}
{{- if or (hasKey $console "admin_token") (hasKey $console "read_token") }}
{{- fail "config.console: set the console's tokens with console.auth.existingSecret (mounted only into the console pod), not in config.console" }}
{{- end }}
{{- $_ := set $console "listen" (printf "0.0.0.0:%d" (int $v.console.port)) }}
{{- with $v.console.alerts.telegram }}
{{- $conn := get ($v.config.connections | default dict) . }}
{{- if not (and $conn (eq (toString (get $conn "type")) "telegram")) }}
{{- fail (printf "console.alerts.telegram: %q is not a connection of type telegram in config.connections" .) }}
{{- end }}
{{- if not (int64 $v.console.alerts.chatId) }}{{ fail "console.alerts.chatId: set the Telegram chat the alerts go to" }}{{ end }}
{{- $_ := set $console "alerts" (dict "telegram" . "chat_id" (int64 $v.console.alerts.chatId)) }}
{{- end }}
{{- $_ := set $config "console" $console }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/*
The pod template of one service. Call with a dict:
  root (the chart's $), component, command (the binary), port, grace (seconds),
  resources, env (extra env list), preStop (seconds, 0 = none), volumes and volumeMounts
  (extra lists, this component's only)
*/}}
{{- define "switchboard.podTemplate" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $sec := $v.kafka.security }}
metadata:
  labels:
    {{- include "switchboard.componentLabels" . | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "switchboard.config" $root | sha256sum }}
    {{- with .annotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "switchboard.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $v.serviceAccount.automountServiceAccountToken }}
  terminationGracePeriodSeconds: {{ .grace }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  containers:
    - name: {{ .component }}
      image: {{ include "switchboard.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args: [{{ .command | quote }}, "--config", "/etc/switchboard/config.yaml"]
      env:
        - name: RUST_LOG
          value: {{ $v.logLevel | quote }}
        {{- with .env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if $v.secrets.envFrom }}
      envFrom:
        {{- range $v.secrets.envFrom }}
        - secretRef:
            name: {{ . }}
        {{- end }}
      {{- end }}
      ports:
        - name: http
          containerPort: {{ .port }}
          protocol: TCP
      startupProbe:
        httpGet: {path: /healthz, port: http}
        periodSeconds: {{ $v.probes.startup.periodSeconds }}
        failureThreshold: {{ $v.probes.startup.failureThreshold }}
      livenessProbe:
        httpGet: {path: /healthz, port: http}
        {{- toYaml $v.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet: {path: /readyz, port: http}
        {{- toYaml $v.probes.readiness | nindent 8 }}
      {{- if .preStop }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", {{ .preStop | toString | quote }}]
      {{- end }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      volumeMounts:
        - {name: config, mountPath: /etc/switchboard, readOnly: true}
        - {name: tmp, mountPath: /tmp}
        {{- if $v.secrets.existingSecret }}
        - {name: app-secrets, mountPath: /var/run/secrets/switchboard/app, readOnly: true}
        {{- end }}
        {{- if and (has $sec.protocol (list "SASL_PLAINTEXT" "SASL_SSL")) $sec.sasl.existingSecret }}
        - {name: kafka-sasl, mountPath: /var/run/secrets/switchboard/kafka-sasl, readOnly: true}
        {{- end }}
        {{- if and (has $sec.protocol (list "SSL" "SASL_SSL")) $sec.tls.caSecret }}
        - {name: kafka-ca, mountPath: /var/run/secrets/switchboard/kafka-ca, readOnly: true}
        {{- end }}
        {{- if and (has $sec.protocol (list "SSL" "SASL_SSL")) $sec.tls.clientCertSecret }}
        - {name: kafka-client, mountPath: /var/run/secrets/switchboard/kafka-client, readOnly: true}
        {{- end }}
        {{- if $v.registry.basicAuth.existingSecret }}
        - {name: registry-auth, mountPath: /var/run/secrets/switchboard/registry, readOnly: true}
        {{- end }}
        {{- with .volumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "switchboard.fullname" $root }}-config
    - name: tmp
      emptyDir: {sizeLimit: 64Mi}
    {{- if $v.secrets.existingSecret }}
    - name: app-secrets
      secret: {secretName: {{ $v.secrets.existingSecret }}, defaultMode: 0440}
    {{- end }}
    {{- if and (has $sec.protocol (list "SASL_PLAINTEXT" "SASL_SSL")) $sec.sasl.existingSecret }}
    - name: kafka-sasl
      secret:
        secretName: {{ $sec.sasl.existingSecret }}
        defaultMode: 0440
        items: [{key: {{ $sec.sasl.passwordKey }}, path: {{ $sec.sasl.passwordKey }}}]
    {{- end }}
    {{- if and (has $sec.protocol (list "SSL" "SASL_SSL")) $sec.tls.caSecret }}
    - name: kafka-ca
      secret:
        secretName: {{ $sec.tls.caSecret }}
        defaultMode: 0444
        items: [{key: {{ $sec.tls.caKey }}, path: {{ $sec.tls.caKey }}}]
    {{- end }}
    {{- if and (has $sec.protocol (list "SSL" "SASL_SSL")) $sec.tls.clientCertSecret }}
    - name: kafka-client
      secret:
        secretName: {{ $sec.tls.clientCertSecret }}
        defaultMode: 0440
        items:
          - {key: {{ $sec.tls.certKey }}, path: {{ $sec.tls.certKey }}}
          - {key: {{ $sec.tls.keyKey }}, path: {{ $sec.tls.keyKey }}}
    {{- end }}
    {{- if $v.registry.basicAuth.existingSecret }}
    - name: registry-auth
      secret:
        secretName: {{ $v.registry.basicAuth.existingSecret }}
        defaultMode: 0440
        items: [{key: {{ $v.registry.basicAuth.passwordKey }}, path: {{ $v.registry.basicAuth.passwordKey }}}]
    {{- end }}
    {{- with .volumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $v.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- range $v.topologySpreadConstraints }}
    - {{ toYaml (merge (dict "labelSelector" (dict "matchLabels" (fromYaml (include "switchboard.componentSelector" $)))) .) | nindent 6 | trim }}
    {{- end }}
  {{- end }}
{{- end }}

{{/*
A Deployment of one service. Call with the podTemplate dict plus: name (resource name
suffix), replicas, autoscaled (bool: leave replicas to an HPA or KEDA).
*/}}
{{- define "switchboard.deployment" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "switchboard.fullname" .root }}-{{ .name }}
  labels:
    {{- include "switchboard.componentLabels" . | nindent 4 }}
spec:
  {{- if not .autoscaled }}
  replicas: {{ .replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 0, maxSurge: 1}
  selector:
    matchLabels:
      {{- include "switchboard.componentSelector" . | nindent 6 }}
  template:
    {{- include "switchboard.podTemplate" . | nindent 4 }}
{{- end }}

{{/* Metrics/admin Service of one component (ServiceMonitor and `helm test` use it). */}}
{{- define "switchboard.adminService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "switchboard.fullname" .root }}-{{ .name }}
  labels:
    {{- include "switchboard.componentLabels" . | nindent 4 }}
    switchboard.io/metrics: "true"
spec:
  type: ClusterIP
  selector:
    {{- include "switchboard.componentSelector" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .port }}
      targetPort: http
      protocol: TCP
{{- end }}

{{/* PodDisruptionBudget of one component. */}}
{{- define "switchboard.pdb" -}}
{{- if .pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "switchboard.fullname" .root }}-{{ .name }}
  labels:
    {{- include "switchboard.componentLabels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "switchboard.componentSelector" . | nindent 6 }}
{{- end }}
{{- end }}

{{/* CPU HorizontalPodAutoscaler of one component. */}}
{{- define "switchboard.hpa" -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "switchboard.fullname" .root }}-{{ .name }}
  labels:
    {{- include "switchboard.componentLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "switchboard.fullname" .root }}-{{ .name }}
  minReplicas: {{ .hpa.minReplicas }}
  maxReplicas: {{ .maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .hpa.targetCPUUtilizationPercentage }}
{{- end }}

{{/* KEDA ScaledObject on the consumer group's lag. */}}
{{- define "switchboard.scaledObject" -}}
{{- $root := .root }}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ include "switchboard.fullname" $root }}-{{ .name }}
  labels:
    {{- include "switchboard.componentLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    name: {{ include "switchboard.fullname" $root }}-{{ .name }}
  minReplicaCount: {{ .keda.minReplicas }}
  maxReplicaCount: {{ .maxReplicas }}
  pollingInterval: {{ .keda.pollingInterval }}
  cooldownPeriod: {{ .keda.cooldownPeriod }}
  triggers:
    {{- range .topics }}
    - type: kafka
      metadata:
        bootstrapServers: {{ $root.Values.kafka.bootstrapServers | quote }}
        consumerGroup: {{ $.group | quote }}
        topic: {{ . | quote }}
        lagThreshold: {{ $.keda.lagThreshold | quote }}
        offsetResetPolicy: earliest
        # Never more replicas than partitions: extra consumers would idle.
        allowIdleConsumers: "false"
      {{- if $root.Values.keda.triggerAuthenticationSecret }}
      authenticationRef:
        name: {{ include "switchboard.fullname" $root }}-kafka
      {{- end }}
    {{- end }}
{{- end }}

{{/* A ConfigMap key for a file path under mappings/ or schemas/ (keys cannot hold `/`). */}}
{{- define "switchboard.fileKey" -}}
{{- . | replace "/" "__" -}}
{{- end }}

{{/*
The volumes, mounts and annotations of the deployment's own files of `kinds` (values
`mappings` and `schemas`), as YAML: {volumes: [...], mounts: [...], annotations: {...}}.
*/}}
{{- define "switchboard.userFiles" -}}
{{- $root := .root }}
{{- $volumes := list }}
{{- $mounts := list }}
{{- $annotations := dict }}
{{- range $kind := .kinds }}
{{- $u := get $root.Values $kind }}
{{- $name := printf "user-%s" $kind }}
{{- $sources := 0 }}
{{- if $u.files }}{{ $sources = add1 $sources }}{{ end }}
{{- if $u.existingConfigMap }}{{ $sources = add1 $sources }}{{ end }}
{{- if $u.volume }}{{ $sources = add1 $sources }}{{ end }}
{{- if gt $sources 1 }}
{{- fail (printf "%s: set one of files, existingConfigMap or volume" $kind) }}
{{- end }}
{{- if $u.files }}
{{- $items := list }}
{{- range $path, $_ := $u.files }}
{{- $items = append $items (dict "key" (include "switchboard.fileKey" $path) "path" $path) }}
{{- end }}
{{- $volumes = append $volumes (dict "name" $name "configMap" (dict "name" (printf "%s-%s" (include "switchboard.fullname" $root) $kind) "items" $items)) }}
{{- $_ := set $annotations (printf "checksum/%s" $kind) (toYaml $u.files | sha256sum) }}
{{- else if $u.existingConfigMap }}
{{- $cm := dict "name" $u.existingConfigMap }}
{{- if $u.items }}{{ $_ := set $cm "items" $u.items }}{{ end }}
{{- $volumes = append $volumes (dict "name" $name "configMap" $cm) }}
{{- else if $u.volume }}
{{- $volumes = append $volumes (merge (dict "name" $name) $u.volume) }}
{{- end }}
{{- if or $u.files $u.existingConfigMap $u.volume }}
{{- $mounts = append $mounts (dict "name" $name "mountPath" (printf "/app/%s" $kind) "readOnly" true) }}
{{- end }}
{{- if $u.revision }}
{{- $_ := set $annotations (printf "switchboard.io/%s-revision" $kind) (toString $u.revision) }}
{{- end }}
{{- end }}
{{- toYaml (dict "volumes" $volumes "mounts" $mounts "annotations" $annotations) }}
{{- end }}
