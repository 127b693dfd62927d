package consulkv_test

import (
	"strings"
	"testing"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/kvstore"
)

// TestRefused: a policy that denies the keys is a refusal for good; a token
// Consul does not know, or none, is the store's configuration and is not.
func TestRefused(t *testing.T) {
	t.Parallel()
	f := startACL(t)
	want := map[string]bool{"limited token outside its prefix": true, "wrong token": false}
	for _, provider := range providers {
		for _, tt := range f.tokens {
			refused, ok := want[tt.name]
			if !ok {
				continue
			}
			t.Run(provider+"/"+tt.name, func(t *testing.T) {
				s := newStore(t, f.agent, consulkv.Config{Address: f.rec.addr, Provider: provider, Token: tt.token})
				c := kvstore.NewCluster(tt.layout, strings.ReplaceAll("refused-"+provider+"-"+tt.name, " ", "-"), sampleMaster(1), 1)
				o := write(t, s, c)[0]
				if o.Status != kvstore.Failed || o.Err == nil {
					t.Fatalf("outcome %v (%v), want failed", o.Status, o.Err)
				}
				if got := s.Refused(o.Err); got != refused {
					t.Errorf("Refused(%v) = %v, want %v", o.Err, got, refused)
				}
			})
		}
	}
}
