// Package admin serves the HTTP endpoints for operators: /metrics, /healthz, /readyz and
// /debug/table. It depends on nothing above it: what to show comes in as functions.
package admin
