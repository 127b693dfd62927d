package kvstore_test

import (
	"slices"
	"testing"

	"github.com/masterkv/masterkv/internal/kvstore"
)

func TestIsEpochKey(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{"mysql/master/a/epoch", true},
		{"mysql/master/db-1:3306/epoch", true},
		{"mysql/master/a", false},
		{"mysql/master/a/port", false},
		{"mysql/master//epoch", false},
		{"mysql/master/epoch", false},
		{"mysql/master/a/b/epoch", false},
		{"other/a/epoch", false},
	} {
		if got := kvstore.IsEpochKey("mysql/master/", tc.key); got != tc.want {
			t.Errorf("IsEpochKey(mysql/master/, %q) = %v, want %v", tc.key, got, tc.want)
		}
	}
}

func TestEpochsAddMerge(t *testing.T) {
	const limit = 1 << 52
	var a kvstore.Epochs
	a.Add("p/a/epoch", "12", limit)
	a.Add("p/b/epoch", "1000000", limit)
	a.Add("p/c/epoch", "7", limit)
	a.Add("p/d/epoch", "4503599627370497", limit) // 2^52+1: hand-set
	a.Add("p/e/epoch", "banana", limit)
	if a.Max != 1_000_000 || a.Key != "p/b/epoch" || a.Keys != 5 {
		t.Errorf("after Add: max %d key %q keys %d, want 1000000 p/b/epoch 5", a.Max, a.Key, a.Keys)
	}
	if want := []string{"p/d/epoch=4503599627370497", "p/e/epoch=banana"}; !slices.Equal(a.Refused, want) {
		t.Errorf("Refused = %q, want %q", a.Refused, want)
	}

	// An empty value is epoch 0 and still names a key.
	var zero kvstore.Epochs
	zero.Add("p/z/epoch", "", limit)
	if zero.Key != "p/z/epoch" || zero.Max != 0 {
		t.Errorf("empty value: max %d key %q, want 0 p/z/epoch", zero.Max, zero.Key)
	}

	var b kvstore.Epochs
	b.Add("q/x/epoch", "2000000", limit)
	a.Merge(b)
	if a.Max != 2_000_000 || a.Key != "q/x/epoch" || a.Keys != 6 || len(a.Refused) != 2 {
		t.Errorf("after Merge of a higher one: %+v", a)
	}
	a.Merge(kvstore.Epochs{Keys: 3})
	if a.Max != 2_000_000 || a.Key != "q/x/epoch" || a.Keys != 9 {
		t.Errorf("after Merge of an empty read: %+v", a)
	}
	var empty kvstore.Epochs
	empty.Merge(zero)
	if empty.Key != "p/z/epoch" {
		t.Errorf("Merge into empty: %+v", empty)
	}
}
