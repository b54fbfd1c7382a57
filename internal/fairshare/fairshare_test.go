package fairshare

import "testing"

// TestShareRule walks the rule over 8 slots: a key alone holds half; a newcomer is admitted
// while any slot is free; the key holding the most is refused first; only a full counter
// refuses a newcomer; released slots go to whoever asks next.
func TestShareRule(t *testing.T) {
	steps := []struct {
		name    string
		release bool
		key     string
		n       int // acquires (or releases) in a row
		want    Refusal
	}{
		{name: "alone: half the slots", key: "flooder", n: 4},
		{name: "alone: no more than half", key: "flooder", n: 1, want: Share},
		{name: "newcomer admitted", key: "neighbor", n: 1},
		{name: "two keys: the flooder refused", key: "flooder", n: 1, want: Share},
		{name: "two keys: a third each", key: "neighbor", n: 1},
		{name: "two keys: no more than a third", key: "neighbor", n: 1, want: Share},
		{name: "a third key", key: "third", n: 2},
		{name: "full: newcomer refused", key: "fourth", n: 1, want: Full},
		{name: "full: a holder refused as full", key: "third", n: 1, want: Full},
		{name: "flooder's work ends", release: true, key: "flooder", n: 4},
		{name: "a newcomer takes a freed slot", key: "", n: 1},
	}
	c := New[string](8)
	for _, step := range steps {
		for i := range step.n {
			if step.release {
				c.Release(step.key)
				continue
			}
			if got := c.Acquire(step.key); got != step.want {
				t.Fatalf("%s: acquire %d for %q = %v, want %v", step.name, i+1, step.key, got, step.want)
			}
		}
	}
	for key, want := range map[string]int{"neighbor": 2, "third": 2, "": 1, "flooder": 0} {
		if got := c.Held(key); got != want {
			t.Errorf("Held(%q) = %d, want %d", key, got, want)
		}
	}
	if c.Total() != 5 || c.Keys() != 3 {
		t.Errorf("Total %d Keys %d, want 5 and 3", c.Total(), c.Keys())
	}
	for _, key := range []string{"neighbor", "neighbor", "third", "third", ""} {
		c.Release(key)
	}
	if c.Total() != 0 || c.Keys() != 0 {
		t.Errorf("after all work ended: Total %d Keys %d, want 0", c.Total(), c.Keys())
	}
}

// TestShareBounds checks the rule at its edges, case by case.
func TestShareBounds(t *testing.T) {
	cases := []struct {
		name string
		max  int
		hold map[string]int // held before the Acquire of "k"
		want Refusal
	}{
		{name: "zero slots", max: 0, want: Full},
		{name: "one slot, free", max: 1, want: Admitted},
		{name: "one slot, taken by another", max: 1, hold: map[string]int{"a": 1}, want: Full},
		{name: "two slots: a newcomer gets the last", max: 2, hold: map[string]int{"a": 1}, want: Admitted},
		{name: "two slots: alone, one is half", max: 2, hold: map[string]int{"k": 1}, want: Share},
		{name: "three keys hold: below max/4", max: 20, hold: map[string]int{"k": 4, "a": 1, "b": 1}, want: Admitted},
		{name: "three keys hold: at max/4", max: 20, hold: map[string]int{"k": 5, "a": 1, "b": 1}, want: Share},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := New[string](tc.max)
			for k, n := range tc.hold {
				for range n {
					if r := c.Acquire(k); r != Admitted {
						t.Fatalf("setup: Acquire(%q) = %v", k, r)
					}
				}
			}
			if got := c.Acquire("k"); got != tc.want {
				t.Errorf("Acquire(k) = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestReleaseWithoutAcquirePanics: a Release nobody took is a bug in the caller, not a count
// to go negative.
func TestReleaseWithoutAcquirePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Release of a key holding nothing did not panic")
		}
	}()
	New[string](4).Release("nobody")
}
