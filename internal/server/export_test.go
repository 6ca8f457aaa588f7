package server

// What the external tests (package server_test) check directly.
var AcceptsGzip = acceptsGzip
