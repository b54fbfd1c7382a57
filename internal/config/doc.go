// Package config holds the settings of `meshdns serve`, their defaults (the only place they
// live) and their validation. Errors name the flag at fault.
package config
