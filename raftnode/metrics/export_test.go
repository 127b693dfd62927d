package metrics

import "github.com/prometheus/client_golang/prometheus"

// Gatherer gives this package's tests the registry.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }
