package zkkv

import "github.com/masterkv/masterkv/internal/kvstore"

// keepHandEdit is the hand-edit half of kvstore.Judge's rule for plan: a
// cluster that ZooKeeper holds at its own epoch with other data is left
// alone when the caller asked to keep hand edits. Distribution (a missing
// cluster, an older epoch) is planned as usual.
func keepHandEdit(c kvstore.Cluster, st stored) *kvstore.Outcome {
	if !c.KeepHandEdits {
		return nil
	}
	get := func(key string) (string, bool) { z, ok := st[key]; return z.data, ok }
	if kvstore.Judge(c, get) != kvstore.HandEdited {
		return nil
	}
	return &kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Status: kvstore.Edited, Keys: len(kvstore.Diff(c, st.observed()))}
}
