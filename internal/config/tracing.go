package config

import (
	"fmt"
	"net"
)

// checkTracing validates the tracing settings shared by server and agent;
// it returns "" when they are fine.
func checkTracing(endpoint string, ratio float64) string {
	if endpoint != "" {
		if _, _, err := net.SplitHostPort(endpoint); err != nil {
			return fmt.Sprintf("otlp_endpoint %q is not host:port (e.g. 127.0.0.1:4317); leave it empty to turn tracing off", endpoint)
		}
	}
	if ratio < 0 || ratio > 1 {
		return fmt.Sprintf("trace_sample_ratio %g must be between 0 and 1", ratio)
	}
	return ""
}
