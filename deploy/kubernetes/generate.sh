#!/bin/sh
# Renders the chart with values.yaml into whatsapp-exporter.yaml, the
# manifests kubectl apply -k applies: one source for Helm and kustomize.
# deploy/kubernetes_test.go fails when the committed file differs from a
# fresh render. Usage: deploy/kubernetes/generate.sh [output], with helm on
# PATH (or HELM=/path/to/helm).
set -eu
cd "$(dirname "$0")"
out=${1:-whatsapp-exporter.yaml}
command="helm template whatsapp-exporter ../helm/whatsapp-exporter --namespace monitoring -f values.yaml"
{
	echo "# Generated from the chart deploy/helm/whatsapp-exporter by"
	echo "# deploy/kubernetes/generate.sh; do not edit: change values.yaml and run it."
	echo "#   $command"
	${HELM:-helm} template whatsapp-exporter ../helm/whatsapp-exporter --namespace monitoring -f values.yaml
} >"$out.tmp"
mv "$out.tmp" "$out"
