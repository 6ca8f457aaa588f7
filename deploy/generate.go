package deploy

// The chart's copies of alerts/ and dashboards/ (Helm reads only files
// inside the chart); TestChartFilesAreGenerated fails when they are stale.
//go:generate go run ./cmd/chartfiles -root ..
