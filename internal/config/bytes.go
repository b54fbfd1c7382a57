package config

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// MinCacheMaxBytes is the smallest --cache-max-bytes: room for some fifty of the largest
// cacheable answers. --cache-size 0 turns the cache off.
const MinCacheMaxBytes = 1 << 20

// byteUnits are the suffixes a size may take, largest first.
var byteUnits = []struct {
	suffix string
	n      int
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// parseBytes parses a size: a whole number of bytes, or of KiB, MiB or GiB ("64MiB").
func parseBytes(s string) (int, error) {
	num, unit := s, 1
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, unit = n, u.n
			break
		}
	}
	v, err := strconv.ParseUint(num, 10, 63)
	if err != nil || v > math.MaxInt/uint64(unit) {
		return 0, errors.New("want a whole number of bytes, KiB, MiB or GiB, such as 64MiB")
	}
	return int(v) * unit, nil
}

// formatBytes writes n as parseBytes reads it, in the largest unit that divides it.
func formatBytes(n int) string {
	for _, u := range byteUnits[:len(byteUnits)-1] {
		if n != 0 && n%u.n == 0 {
			return strconv.Itoa(n/u.n) + u.suffix
		}
	}
	return strconv.Itoa(n)
}
