package populate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/nodeclient"
)

// MaxBatchBytes bounds one populate body, below the nodes' 64 KiB limit.
const MaxBatchBytes = 60 << 10

// post validates masters and posts them in batches. Invalid or duplicate
// masters, and masters a node refuses, are left out and reported in the
// error; a node group that cannot be reached stops the run.
func (h *Handler) post(ctx context.Context, runKey string, masters []Master) (Counts, error) {
	valid, problems := check(masters)
	var total Counts
	for _, batch := range batches(valid) {
		c, refused, err := h.postBatch(ctx, runKey, batch)
		total.Checked += c.Checked
		total.Submitted += c.Submitted
		total.Skipped += c.Skipped
		problems = append(problems, refused...)
		if err != nil {
			return total, errors.Join(append(problems, err)...)
		}
	}
	return total, errors.Join(problems...)
}

// check drops invalid masters and later duplicates of a cluster, and sorts
// the rest by cluster, so that the same masters always make the same
// batches (and so the same idempotency keys).
func check(masters []Master) ([]Master, []error) {
	var problems []error
	seen := map[string]bool{}
	var out []Master
	for _, m := range masters {
		err := master.Validate(m.Cluster, master.Master{Host: m.Host, Port: m.Port, IPv4: m.IPv4, IPv6: m.IPv6})
		if err == nil && seen[m.Cluster] {
			err = errors.New("cluster: listed twice; the first entry was kept")
		}
		if err != nil {
			problems = append(problems, fmt.Errorf("master of cluster %q left out: %w", m.Cluster, err))
			continue
		}
		seen[m.Cluster] = true
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Master) int { return strings.Compare(a.Cluster, b.Cluster) })
	return out, problems
}

// batches splits masters into runs whose body stays under MaxBatchBytes.
func batches(masters []Master) [][]Master {
	var out [][]Master
	var cur []Master
	size := len(`{"masters":[]}`)
	for _, m := range masters {
		b, _ := json.Marshal(m)
		if len(cur) > 0 && size+len(b)+1 > MaxBatchBytes {
			out = append(out, cur)
			cur, size = nil, len(`{"masters":[]}`)
		}
		cur = append(cur, m)
		size += len(b) + 1
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// refusedEntry finds the entry a node's 400 names: "masters[3].host: ...".
var refusedEntry = regexp.MustCompile(`^masters\[(\d+)\]`)

// postBatch posts one batch. When a node refuses one entry (a loopback
// master, say), that entry is dropped and reported, and the rest is
// posted again. err is set only when the node group cannot be reached.
func (h *Handler) postBatch(ctx context.Context, runKey string, batch []Master) (c Counts, refused []error, err error) {
	for len(batch) > 0 {
		body, _ := json.Marshal(map[string][]Master{"masters": batch})
		resp, err := h.nodes.Do(ctx, nodeclient.Request{
			Method: http.MethodPost, Path: "/v1/populate", Body: body, ContentType: "application/json",
			IdempotencyKey: batchKey(runKey, body),
		})
		if err != nil {
			return c, refused, fmt.Errorf("populate batch of %d masters: %w", len(batch), err)
		}
		if resp.Status == http.StatusOK {
			if err := json.Unmarshal(resp.Body, &c); err != nil {
				return c, append(refused, fmt.Errorf("populate batch of %d masters: node %s answered 200 with %.200q: %v", len(batch), resp.Node, resp.Body, err)), nil
			}
			return c, refused, nil
		}
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(resp.Body, &e)
		m := refusedEntry.FindStringSubmatch(e.Error)
		i := -1
		if m != nil && resp.Status == http.StatusBadRequest {
			i, _ = strconv.Atoi(m[1])
		}
		if i < 0 || i >= len(batch) {
			return c, append(refused, fmt.Errorf("populate batch of %d masters: node %s answered %d: %.300s", len(batch), resp.Node, resp.Status, bytes.TrimSpace(resp.Body))), nil
		}
		refused = append(refused, fmt.Errorf("master of cluster %q refused by the nodes: %s", batch[i].Cluster, e.Error))
		batch = slices.Delete(slices.Clone(batch), i, i+1)
	}
	return c, refused, nil
}

// batchKey is a batch's idempotency key: the scheduled run and the batch's
// content. A retried run posts the same batches under the same keys and
// commits nothing twice; a run whose masters changed meanwhile gets new
// keys instead of a "key reused for another request" refusal.
func batchKey(runKey string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(runKey))
	h.Write([]byte{0})
	h.Write(body)
	return "populate-" + hex.EncodeToString(h.Sum(nil))[:40]
}
