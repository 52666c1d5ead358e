// Package telemetry holds the server's Prometheus metrics and the
// OpenTelemetry tracing setup.
//
// Metrics are registered on the Registerer the caller passes (the server's
// own /metrics registry), never on the global one. Every domain package gets
// the *Metrics it should report to; a nil *Metrics is valid and records
// nothing, so packages and tests need no metrics to run.
//
// Tracing is off unless an OTLP endpoint is configured (NewTracing). Trace
// context crosses the agent tunnel in the request frame's metadata (W3C
// traceparent/tracestate), so one trace runs from the operator's call
// through server, agent and SDK into the game server's handler. The metric
// names and the tracing settings are documented in docs/observability.md.
package telemetry
