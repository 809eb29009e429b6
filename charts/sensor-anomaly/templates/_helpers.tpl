{{/* Names: the release's, cut to what a label and a DNS label may hold. */}}
{{- define "sa.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sa.dataflow" -}}{{ include "sa.fullname" . }}-dataflow{{- end -}}
{{- define "sa.notifier" -}}{{ include "sa.fullname" . }}-notifier{{- end -}}

{{- define "sa.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component (dataflow, notifier, init-topics). */}}
{{- define "sa.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "sa.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The dataflow's peers, one line a pod: its stable name under the headless Service. */}}
{{- define "sa.hostfile" -}}
{{- $set := include "sa.dataflow" . -}}
{{- range $i := until (int .Values.dataflow.replicas) }}
{{ $set }}-{{ $i }}.{{ $set }}.{{ $.Release.Namespace }}.svc.{{ $.Values.clusterDomain }}:{{ $.Values.dataflow.exchangePort }}
{{- end }}
{{- end -}}

{{/* Checks of values that Kubernetes would accept but the programs would not. */}}
{{- define "sa.validate" -}}
{{- if not .Values.kafka.brokers -}}
{{- fail "kafka.brokers is required: the existing broker's bootstrap addresses (host:port, comma-separated)" -}}
{{- end -}}
{{- if and .Values.notifier.enabled (not .Values.notifier.alertmanagerUrl) -}}
{{- fail "notifier.alertmanagerUrl is required with notifier.enabled (or set notifier.enabled=false)" -}}
{{- end -}}
{{- if .Values.notifier.enabled -}}
{{- if not (regexMatch "^https?://[^/]" .Values.notifier.alertmanagerUrl) -}}
{{- fail (printf "notifier.alertmanagerUrl=%q must be an http:// or https:// URL with a host: the notifier would refuse to start" .Values.notifier.alertmanagerUrl) -}}
{{- end -}}
{{- /* The notifier refuses a re-send interval over a third of the resolve timeout. */ -}}
{{- $resend := 60.0 -}}
{{- range .Values.notifier.env -}}
{{- if eq .name "NOTIFIER_RESEND_SECONDS" -}}{{- $resend = float64 .value -}}{{- end -}}
{{- end -}}
{{- if lt (float64 .Values.notifier.resolveTimeoutSeconds) (mulf $resend 3) -}}
{{- fail (printf "notifier.resolveTimeoutSeconds=%v is under three times NOTIFIER_RESEND_SECONDS=%v: the notifier would refuse to start (set NOTIFIER_RESEND_SECONDS lower in notifier.env, or this to Alertmanager's global.resolve_timeout)" .Values.notifier.resolveTimeoutSeconds $resend) -}}
{{- end -}}
{{- end -}}
{{- $workers := mul (int .Values.dataflow.replicas) (int .Values.dataflow.workersPerProcess) -}}
{{- if lt (int .Values.dataflow.shards) $workers -}}
{{- fail (printf "dataflow.shards=%v is fewer than the cluster's %v workers (replicas x workersPerProcess): the flow would refuse to start" .Values.dataflow.shards $workers) -}}
{{- end -}}
{{- if and .Values.dataflow.recovery.enabled (gt (int .Values.dataflow.recovery.partitions) (int .Values.dataflow.replicas)) -}}
{{- fail (printf "dataflow.recovery.partitions=%v is more than dataflow.replicas=%v: pod N holds recovery partition N, so partitions past the last pod would exist nowhere (docs/kubernetes.md, Scaling)" .Values.dataflow.recovery.partitions .Values.dataflow.replicas) -}}
{{- end -}}
{{- if and (hasPrefix "SASL" .Values.kafka.securityProtocol) (not .Values.kafka.sasl.existingSecret) -}}
{{- fail (printf "kafka.securityProtocol=%s needs kafka.sasl.existingSecret: the Secret holding the user name and password" .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- if and (hasSuffix "SSL" .Values.kafka.securityProtocol) (not .Values.kafka.tls.existingSecret) -}}
{{- fail (printf "kafka.securityProtocol=%s needs kafka.tls.existingSecret: the Secret holding the CA certificate" .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- end -}}

{{/* What every program reads to reach Kafka: brokers, topics, security. */}}
{{- define "sa.kafkaEnv" -}}
- name: KAFKA_BROKERS
  value: {{ .Values.kafka.brokers | quote }}
- name: BROKER_WAIT_TIMEOUT_SECONDS
  value: {{ .Values.kafka.waitTimeoutSeconds | quote }}
- name: AIR_QUALITY_TOPIC
  value: {{ .Values.topics.airQuality | quote }}
- name: TEMPERATURE_TOPIC
  value: {{ .Values.topics.temperature | quote }}
- name: ANOMALIES_TOPIC
  value: {{ .Values.topics.anomalies | quote }}
- name: DLQ_TOPIC
  value: {{ .Values.topics.deadLetters | quote }}
- name: TOPIC_PARTITIONS
  value: {{ .Values.topics.partitions | quote }}
{{- if .Values.sensorsConfig }}
- name: SENSORS_CONFIG
  value: /etc/sensor-anomaly/sensors/sensors.yaml
{{- end }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- if hasPrefix "SASL" .Values.kafka.securityProtocol }}
- name: KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.usernameKey }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.passwordKey }}
{{- end }}
{{- if hasSuffix "SSL" .Values.kafka.securityProtocol }}
- name: KAFKA_SSL_CA_LOCATION
  value: /etc/sensor-anomaly/kafka-tls/{{ .Values.kafka.tls.caKey }}
{{- if .Values.kafka.tls.certKey }}
- name: KAFKA_SSL_CERT_LOCATION
  value: /etc/sensor-anomaly/kafka-tls/{{ .Values.kafka.tls.certKey }}
- name: KAFKA_SSL_KEY_LOCATION
  value: /etc/sensor-anomaly/kafka-tls/{{ .Values.kafka.tls.keyKey }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The volumes behind sa.kafkaEnv's files, and their mounts; /tmp, the one writable path
besides the recovery volume (the root filesystem is read-only). Called with the root context
and the name of the ConfigMap holding the sensors file: dict "root" $ "sensors" NAME. */}}
{{- define "sa.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if .root.Values.sensorsConfig }}
- name: sensors
  configMap:
    name: {{ .sensors }}
{{- end }}
{{- if hasSuffix "SSL" .root.Values.kafka.securityProtocol }}
- name: kafka-tls
  secret:
    secretName: {{ .root.Values.kafka.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/* The sensors file, in a ConfigMap of its own for the hook Job and the release's one. */}}
{{- define "sa.sensorsData" -}}
sensors.yaml: |
{{ .Values.sensorsConfig | trimSuffix "\n" | indent 2 }}
{{- end -}}

{{- define "sa.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.sensorsConfig }}
- name: sensors
  mountPath: /etc/sensor-anomaly/sensors
  readOnly: true
{{- end }}
{{- if hasSuffix "SSL" .Values.kafka.securityProtocol }}
- name: kafka-tls
  mountPath: /etc/sensor-anomaly/kafka-tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* Non-root (the image's app user), no privilege, read-only root filesystem. */}}
{{- define "sa.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "sa.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
{{- end -}}

{{- define "sa.scrapeAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ . | quote }}
prometheus.io/path: /metrics
{{- end -}}
