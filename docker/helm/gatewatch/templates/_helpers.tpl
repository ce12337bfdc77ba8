{{- define "gatewatch.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gatewatch.labels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "gatewatch.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "gatewatch.kafkaEnv" -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: GATEWATCH_TOPIC_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
{{- if .Values.kafka.configSecret }}
- name: GATEWATCH_KAFKA_CONFIG
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.configSecret }}
      key: GATEWATCH_KAFKA_CONFIG
{{- end }}
{{- end -}}

{{- define "gatewatch.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: {{ .port }}}
  {{- toYaml .probes.liveness | nindent 2 }}
readinessProbe:
  httpGet: {path: /readyz, port: {{ .port }}}
  {{- toYaml .probes.readiness | nindent 2 }}
{{- end -}}

{{- define "gatewatch.pdb" -}}
{{- if .root.Values.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "gatewatch.fullname" .root }}-{{ .name }}
  labels:
    {{- include "gatewatch.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .root.Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "gatewatch.selector" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/*
One worker: Deployment (+ state PVC, + PDB). Dict keys: root, name, args, key (private key role
or ""), replicas, resources, policies (bool), executorConfig (bool), env (list).
*/}}
{{- define "gatewatch.worker" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $full := include "gatewatch.fullname" $root -}}
{{- if $v.persistence.enabled }}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ $full }}-{{ .name }}-state
  labels:
    {{- include "gatewatch.labels" . | nindent 4 }}
spec:
  accessModes: [{{ $v.persistence.accessMode }}]
  {{- if $v.persistence.storageClass }}
  storageClassName: {{ $v.persistence.storageClass | quote }}
  {{- end }}
  resources:
    requests:
      storage: {{ $v.persistence.size }}
{{- end }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $full }}-{{ .name }}
  labels:
    {{- include "gatewatch.labels" . | nindent 4 }}
spec:
  replicas: {{ .replicas | default 1 }}
  strategy:
    # one state volume (ReadWriteOnce) or one ledger: the old pod goes before the new one starts
    type: {{ if and $v.persistence.enabled (eq $v.persistence.accessMode "ReadWriteMany") }}RollingUpdate{{ else }}Recreate{{ end }}
  selector:
    matchLabels:
      {{- include "gatewatch.selector" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "gatewatch.selector" . | nindent 8 }}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $v.opsPort | quote }}
        prometheus.io/path: /metrics
        checksum/config: {{ include (print $root.Template.BasePath "/configmaps.yaml") $root | sha256sum }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      {{- if .key }}
      initContainers:
        # the Secret's file is root's (0400, or 0440 under the fsGroup): a copy owned by the
        # process's user, mode 0400, in memory (gatewatch refuses a key with a group/other bit)
        - name: own-{{ .key }}-key
          image: "{{ $v.image.repository }}:{{ $v.image.tag }}"
          imagePullPolicy: {{ $v.image.pullPolicy }}
          command: [sh, -ec, {{ include "gatewatch.keyCopy" (dict "key" .key "uid" $v.securityContext.runAsUser "gid" ($v.securityContext.runAsGroup | default $v.securityContext.runAsUser)) | quote }}]
          securityContext:
            {{- toYaml $v.keys.initSecurityContext | nindent 12 }}
          volumeMounts:
            - {name: private-key-secret, mountPath: /secret, readOnly: true}
            - {name: private-key, mountPath: /owned}
      {{- end }}
      containers:
        - name: {{ .name }}
          image: "{{ $v.image.repository }}:{{ $v.image.tag }}"
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args:
            {{- toYaml .args | nindent 12 }}
          env:
            {{- include "gatewatch.kafkaEnv" $root | nindent 12 }}
            - name: GATEWATCH_HTTP_HOST
              value: 0.0.0.0
            - name: GATEWATCH_KEYS_DIR
              value: /keys
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - {name: ops, containerPort: {{ $v.opsPort }}}
          {{- include "gatewatch.probes" (dict "port" "ops" "probes" $v.probes) | nindent 10 }}
          securityContext:
            {{- toYaml $v.securityContext | nindent 12 }}
          resources:
            {{- toYaml (.resources | default dict) | nindent 12 }}
          volumeMounts:
            - {name: state, mountPath: /data}
            - {name: tmp, mountPath: /tmp}
            {{- if .policies }}
            - {name: policies, mountPath: /etc/gatewatch/policies, readOnly: true}
            {{- end }}
            {{- if .executorConfig }}
            - {name: executor-config, mountPath: /etc/gatewatch/executor, readOnly: true}
            {{- end }}
            {{- if .key }}
            - name: private-key
              mountPath: /keys/{{ .key }}.key
              subPath: {{ .key }}.key
              readOnly: true
            {{- range $v.keys.publicRoles }}
            - name: public-keys
              mountPath: /keys/{{ . }}.pub
              subPath: {{ . }}.pub
              readOnly: true
            {{- end }}
            {{- end }}
      volumes:
        - name: state
          {{- if $v.persistence.enabled }}
          persistentVolumeClaim:
            claimName: {{ $full }}-{{ .name }}-state
          {{- else }}
          emptyDir: {}
          {{- end }}
        - name: tmp
          emptyDir: {}
        {{- if .policies }}
        - name: policies
          configMap:
            name: {{ $full }}-policies
        {{- end }}
        {{- if .executorConfig }}
        - name: executor-config
          configMap:
            name: {{ $full }}-executor
        {{- end }}
        {{- if .key }}
        - name: private-key-secret
          secret:
            secretName: {{ $v.keys.secretName }}
            defaultMode: 0400
            items:
              - {key: {{ .key }}.key, path: {{ .key }}.key}
        - name: private-key
          emptyDir: {medium: Memory, sizeLimit: 1Mi}
        - name: public-keys
          configMap:
            name: {{ $v.keys.publicConfigMap }}
        {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- include "gatewatch.pdb" . }}
{{- end -}}

{{/* The init container's copy of a private key: ours, mode 0400, before anyone can read it (chmod
while root owns it, then chown: the container has CAP_CHOWN only). */}}
{{- define "gatewatch.keyCopy" -}}
umask 077; cp /secret/{{ .key }}.key /owned/{{ .key }}.key; chmod 0400 /owned/{{ .key }}.key; chown {{ .uid }}:{{ .gid }} /owned/{{ .key }}.key
{{- end -}}
