package config

import "testing"

// TestRegistryFollowSymlinks: links leading out of the registry are not followed by default;
// the flag's value reaches the settings.
func TestRegistryFollowSymlinks(t *testing.T) {
	c := Default()
	c.Registry = "x"
	for _, follow := range []bool{false, true} {
		if follow {
			c.RegistryFollowSymlinks = true
		}
		s, err := c.Validate(Pod{})
		if err != nil || s.RegistryFollowSymlinks != follow {
			t.Errorf("follow %v: settings %v, err %v", follow, s.RegistryFollowSymlinks, err)
		}
	}
}
