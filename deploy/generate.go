package deploy

// The chart's copies of alerts/ and dashboards/ (Helm reads only files
// inside the chart), then the kustomize manifests rendered from the chart,
// which hold them too. TestChartFilesAreGenerated and
// TestKustomizeGenerated fail when either is stale. The second needs helm.
//go:generate go run ./cmd/chartfiles -root ..
//go:generate sh kubernetes/generate.sh
