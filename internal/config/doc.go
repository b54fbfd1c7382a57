// Package config holds the settings of `meshdns serve`, their defaults (here, or in the
// package that applies them, referenced from here) and their validation.
//
// Flags land in Config as given; Config.Validate checks them and returns Settings, every value
// in the type its user takes (netip.AddrPort, netip.Prefix, dnsname.FQDN, upstream.Policy,
// slog.Level), so nothing downstream parses again. Validate does no I/O: DetectPod is the one
// place that reads the environment and the service account mount, and its result is passed
// in. Errors name the flag at fault.
package config
